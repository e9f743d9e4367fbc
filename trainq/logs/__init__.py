"""Every log trainq writes, in one format (:mod:`~trainq.logs.format`): component logs
(:mod:`~trainq.logs.components`) and each job's output, split into lines once
(:mod:`~trainq.logs.lines`), written to a file and a Redis stream
(:mod:`~trainq.logs.writer`, :mod:`~trainq.logs.stream`), read back and searched
(:mod:`~trainq.logs.reader`), compressed and expired (:mod:`~trainq.logs.retention`).
"""
