"""Erasure requests: POST /api/v1/erasures (an `erase` key), the receipt, and the raw identifiers'
tokens under the tenant's /v1/traces key. The work itself is store.erasure's."""
