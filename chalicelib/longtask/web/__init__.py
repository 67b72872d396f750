"""The HTTP interface: routes, request reading, answers, pages and the OpenAPI document."""
