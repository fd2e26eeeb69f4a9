"""The HTTPS edge: FastAPI application, uvicorn runner, metrics and logs."""
