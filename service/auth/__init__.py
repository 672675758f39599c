"""Who may call: CDS Hooks 2.0 client authentication, without Flask.

``issuers`` reads the ``CDS_TRUSTED_ISSUERS`` allow-list, ``keys`` finds an
issuer's verification keys (PyJWT's ``PyJWKClient``/``PyJWKSet``), ``verifier``
checks a bearer JWT. The replay store is passed in; the HTTP wiring is in
``service.http.security``.
"""
