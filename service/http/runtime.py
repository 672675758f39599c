"""What one app instance holds: settings, the use cases and the audit port."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from service.audit.records import AuditTrail
from service.cds.feedback import FeedbackDesk
from service.cds.hook import HookHandler
from service.config import Settings

EXTENSION_KEY = "backpain_cds"


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    handler: HookHandler
    feedback: FeedbackDesk
    audit: AuditTrail


def runtime() -> Runtime:
    value: Runtime = current_app.extensions[EXTENSION_KEY]
    return value
