"""The service's domain layer: every query and rule, one module per concept.

API routes (:mod:`coopml.service.api.routes`) only translate HTTP to calls of these
modules and back; the dashboard (:mod:`coopml.service.web`) calls them too, never a
route handler. Modules take a SQLAlchemy ``Session`` and plain values, return records or
raise domain errors, and hold no HTTP concepts.
"""
