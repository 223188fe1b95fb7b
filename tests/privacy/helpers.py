"""Helpers shared by the privacy tests."""

# Model ids of every major provider: identifiers that no detector may change.
MODELS = ("claude-sonnet-4-20250514", "claude-3-5-sonnet-20241022", "claude-opus-4-1-20250805",
          "us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4@20250514", "gpt-4o-2024-08-06",
          "gpt-4.1-2025-04-14", "o3-2025-04-16", "gemini-2.5-flash-preview-05-20", "gemini-1.5-pro-002",
          "meta-llama/Llama-3.3-70B-Instruct", "llama-3.1-8b-instant", "mistral-large-2411", "codestral-2501",
          "mistral-small-2503")
