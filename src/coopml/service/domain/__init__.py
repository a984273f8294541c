"""The service's domain layer: every query and rule, one module per concept.

API routes (:mod:`coopml.service.api.routes`) only translate HTTP to calls of these
modules and back; the dashboard (:mod:`coopml.service.web`) calls them too, never a
route handler. Modules take a SQLAlchemy ``Session`` and plain values, raise
:class:`~coopml.service.api.errors.ApiError`-free domain errors or return records, and
hold no HTTP concepts.
"""
