"""The API's routes, one module per resource: jobs (/train) and the cluster."""
