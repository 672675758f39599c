"""What one app instance holds: settings, knowledge, the audit port, the handler."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from service.audit.records import AuditTrail
from service.config import Settings
from service.hooks import HookHandler

EXTENSION_KEY = "backpain_cds"


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    handler: HookHandler
    audit: AuditTrail


def runtime() -> Runtime:
    value: Runtime = current_app.extensions[EXTENSION_KEY]
    return value
