"""Users, their tokens, and who may do what (:mod:`trainq.users.access`).

Users and tokens live in Redis (:mod:`trainq.users.store`, with an in-memory twin
for unit tests); a token is shown once when issued and stored only as its sha256.
"""
