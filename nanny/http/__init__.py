"""REST handlers (one module per resource), schemas, middlewares and the OpenAPI document."""
