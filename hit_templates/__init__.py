"""Jinja2 HIT templates (one per task type / example), shipped with the package."""
