"""The local stack of `make run`: a moto server, the infra on it, the HTTP app, workers."""
