"""Span conventions of /v1/traces, one module each. Pure: no I/O.

`genai` (OTel GenAI), `openinference` (Arize), `openllmetry` (Traceloop) each read one span's
attributes and events into a dict of `Facts` fields (only what the span says); `combine` merges
them with the precedence `flusso.*` > OTel GenAI > OpenInference > OpenLLMetry > generic and
normalizes tokens; `content` says which attributes hold customer text and which name a person.
"""
