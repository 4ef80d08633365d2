"""Training scripts that run inside SageMaker containers and, unchanged, locally."""
