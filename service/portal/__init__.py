"""The intake portal: a patient-facing page that renders a bundled Questionnaire with
LHC-Forms (vendored under ``static/vendor/lforms``) and screens it live through the same
``HookHandler`` as the ``questionnaire-inprogress`` hook, on its own same-origin endpoints.

``install(app, ...)`` is called by ``service.app.create_app`` (unless ``PORTAL=off``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from service.cds.hook import HookHandler
from service.config import Settings
from service.portal.delivery import ClinicDelivery
from service.portal.guard import RateLimiter

EXTENSION_KEY = "backpain_cds.portal"


@dataclass(frozen=True)
class Portal:
    """What the portal's views use: settings, the screen, its limiter, its delivery."""

    settings: Settings
    handler: HookHandler
    limiter: RateLimiter
    #: None when no ``PORTAL_FHIR_SERVER`` is set (the patient prints or downloads)
    delivery: ClinicDelivery | None


def portal() -> Portal:
    value: Portal = current_app.extensions[EXTENSION_KEY]
    return value


def install(app: Flask, settings: Settings, handler: HookHandler) -> None:
    from service.portal.views import bp

    delivery = None
    if settings.portal_fhir_server:
        delivery = ClinicDelivery(
            settings.portal_fhir_server,
            settings.portal_fhir_token,
            attempts=settings.portal_delivery_attempts,
            timeout=settings.fhir_timeout,
        )
    limiter = RateLimiter(settings.portal_rate_per_minute, settings.portal_rate_burst)
    app.extensions[EXTENSION_KEY] = Portal(settings, handler, limiter, delivery)
    app.register_blueprint(bp)
