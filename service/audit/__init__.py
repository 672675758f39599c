"""The audit adapter: every call and its cards, feedback, and the ``jti`` replay store.

``records`` is the port (plain records, ``AuditTrail``, ``ReplayStore``, domain errors);
``factory.create_audit_trail`` assembles the rest: ``sql.SqlAuditStore`` (writes or
raises), ``spooling.SpoolingAuditTrail`` (answers through outages: ``spool``, drain),
``replay.JtiReplayStore`` and ``state.DatabaseState`` (up/down, shared by both).
"""
