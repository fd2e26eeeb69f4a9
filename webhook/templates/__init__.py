"""Run:AI templates: env vars that an admin sets once for many jobs."""
