"""Attribute and event names the bridge writes on spans.

OTel GenAI semantic conventions are used where one exists; everything else lives in the
single ``flusso.`` namespace below. The assembler reads only these names.
"""

from __future__ import annotations

# --- OTel GenAI semantic conventions ---
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"  # invoke_agent | execute_tool | retrieval | chat
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_DATA_SOURCE_ID = "gen_ai.data_source.id"

# --- ours ---
KIND = "flusso.kind"  # workflow | planner | agent | tool | retriever | llm | chain | ...
WORKFLOW_NAME = "flusso.workflow.name"
NODE_NAME = "flusso.node.name"
TICKET_ID = "flusso.ticket_id"  # set on the root span by record.ticket()
CLIENT_ID = "flusso.client_id"
STATUS = "flusso.status"
SCHEMA_VERSION = "flusso.schema_version"
PAYLOAD = "flusso.payload"  # JSON string carried by every flusso.* event
LLM_COST_USD = "flusso.llm.cost_usd"
# Experiment tags on a workflow's root span (otel_bridge.experiments -> identification.experiment).
EXPERIMENT_ID = "flusso.experiment.id"
EXPERIMENT_NAME = "flusso.experiment.name"
DATASET_ID = "flusso.dataset.id"
DATASET_NAME = "flusso.dataset.name"
DATASET_ITEM_ID = "flusso.dataset.item_id"
# attribute -> key of identification.experiment
EXPERIMENT_KEYS = {EXPERIMENT_ID: "id", EXPERIMENT_NAME: "name", DATASET_ID: "dataset_id",
                   DATASET_NAME: "dataset", DATASET_ITEM_ID: "item_id"}

KIND_WORKFLOW = "workflow"

# Event names written by record.*; the payload is a JSON object in the PAYLOAD attribute.
EVENT_TICKET = "flusso.ticket"
EVENT_REACT_ITERATION = "flusso.react_iteration"
EVENT_RETRIEVAL = "flusso.retrieval"
EVENT_EVIDENCE = "flusso.evidence"
EVENT_DECISION = "flusso.decision"
EVENT_LLM_CALL = "flusso.llm_call"
EVENT_METRIC = "flusso.metric"
EVENT_DRAFT = "flusso.draft"
EVENT_OUTCOME = "flusso.outcome"
EVENT_PII = "flusso.pii"  # values to redact wherever they occur; never copied into the log

# The OTel log record the bridge emits.
LOG_EVENT_NAME = "flusso.workflow_log"
SCHEMA_VERSION_VALUE = "1"

# Node kind -> gen_ai.operation.name (only where the GenAI conventions define one).
OPERATION_BY_KIND = {
    "workflow": "invoke_agent",
    "agent": "invoke_agent",
    "tool": "execute_tool",
    "retriever": "retrieval",
    "llm": "chat",
}
