"""Code packaged into the Lambdas: the longtask framework and the demo tasks."""
