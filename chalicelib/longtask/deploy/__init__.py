"""Deploying an app that mounts longtask: its functions' policies and its stage."""
