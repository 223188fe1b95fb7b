"""A simulated Flusso support workflow, instrumented with otel_bridge.

No external calls: every LLM, tool and search is simulated with seeded randomness and short
sleeps scaled by ``SPEED`` (1.0 = a few ms per step; set 0 for no sleeping at all). Shape:
fetch_ticket -> planner -> ReACT loop (1-8 iterations, tool calls) -> vision search and text
RAG in parallel -> evidence resolution -> draft response -> outcome.

    from flusso_obs.examples import support_workflow as wf
    configure(endpoint="http://127.0.0.1:8000", api_key="...", environment="development")  # or a PII_HASH_KEY
    for t in wf.generate_tickets(20): asyncio.run(wf.handle_ticket(t))
    flush()
"""

from __future__ import annotations

import asyncio
import random
import zlib

from otel_bridge import node, record, workflow

SPEED = 1.0  # multiplies every simulated latency (seconds = base_ms * SPEED / 1000)

_FIRST = ["Anna", "Luca", "Maria", "John", "Sofia", "Marco", "Giulia", "Peter", "Chiara", "Ahmed", "Elena", "Tom"]
_LAST = ["Rossi", "Bianchi", "Smith", "Ferrari", "Müller", "Esposito", "Romano", "Khan", "Colombo", "Doe"]
_DOMAINS = ["example.com", "mail.example.org", "acme-corp.example", "posta.example.it"]
_ISSUES = [
    ("Printer shows error E4", "printer", "My printer {model} shows error E4 after the update. Call me at {phone}."),
    ("Refund for order {order}", "billing",
     "I was charged twice for order {order}. My card ends with 4242, IBAN {iban}."),
    ("Cannot log in", "account", "Password reset link never arrives at {email}. Please help, {name}."),
    ("Delivery late", "shipping", "Order {order} should have arrived last week. Tracking says nothing."),
    ("Screen flickers", "hardware", "The screen of my {model} flickers when charging. Photo attached."),
    ("Invoice address wrong", "billing", "Please change the invoice address for {order} to Via Roma 12, Milano."),
]
_IBANS = ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32", "IT60 X054 2811 1010 0000 0123 456"]
_MODELS = ["LaserJet X200", "InkPro 9", "Flusso Tab 11", "PixelBook 3"]
_TOOLS = ["order_lookup", "crm_search", "shipping_status", "refund_policy", "device_diagnostics", "kb_lookup"]


def _sleep_s(rng: random.Random, base_ms: float, jitter: float = 0.5) -> float:
    return max(0.0, base_ms * (1 + rng.uniform(-jitter, jitter))) * SPEED / 1000.0


def generate_tickets(n: int, seed: int = 0) -> list[dict]:
    """``n`` realistic tickets (with real-looking PII so hashing shows), deterministic by seed.
    About 5% are set to fail, 10% are slow, some need escalation."""
    rng = random.Random(seed)
    tickets = []
    for i in range(n):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{first.lower()}.{last.lower().replace('ü', 'u')}{rng.randint(1, 99)}@{rng.choice(_DOMAINS)}"
        phone = f"+39 3{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
        order = f"A-{rng.randint(10000, 99999)}"
        subject_t, category, body_t = rng.choice(_ISSUES)
        fmt = dict(model=rng.choice(_MODELS), phone=phone, order=order, iban=rng.choice(_IBANS),
                   email=email, name=f"{first} {last}")
        tickets.append({
            "ticket_id": f"T-{10000 + seed * 100000 + i}",
            "subject": subject_t.format(**fmt),
            "description": body_t.format(**fmt),
            "category": category,
            "requester_name": f"{first} {last}",
            "requester_email": email,
            "requester_phone": phone,
            "channel": rng.choice(["email", "chat", "web", "phone"]),
            "priority": rng.choices(["low", "normal", "high", "urgent"], [2, 5, 2, 1])[0],
            "attachments": [b"\x89PNG fake screenshot bytes " + bytes([i % 256])] if "Photo" in body_t else [],
            "simulate": {
                "fail": rng.random() < 0.05,
                "slow": rng.random() < 0.10,
                "react_iterations": rng.randint(1, 8),
                "seed": rng.randrange(1 << 30),
            },
        })
    return tickets


def _rng_for(ticket: dict) -> random.Random:
    sim = ticket.get("simulate") or {}
    return random.Random(sim.get("seed", zlib.crc32(str(ticket.get("ticket_id")).encode())))


@node("fetch_ticket", kind="chain")
async def fetch_ticket(ticket: dict, rng: random.Random) -> dict:
    await asyncio.sleep(_sleep_s(rng, 2))
    record.ticket(
        ticket["ticket_id"], subject=ticket["subject"], requester_email=ticket["requester_email"],
        requester_name=ticket["requester_name"], channel=ticket["channel"], priority=ticket["priority"],
        description=ticket["description"], requester_phone=ticket["requester_phone"], category=ticket["category"],
    )
    return ticket


@node("planner", kind="planner")
async def planner(ticket: dict, rng: random.Random) -> dict:
    await asyncio.sleep(_sleep_s(rng, 4))
    record.llm_call(model="gpt-4o-mini", input_tokens=rng.randint(600, 1400), output_tokens=rng.randint(80, 200),
                    cost_usd=round(rng.uniform(0.0004, 0.0012), 6))
    needs_tools = ticket["category"] in ("billing", "shipping", "account") or rng.random() < 0.5
    record.decision("route", "react_agent" if needs_tools else "direct_answer",
                    f"category {ticket['category']} {'needs' if needs_tools else 'does not need'} lookups",
                    round(rng.uniform(0.7, 0.97), 2))
    return {"needs_tools": needs_tools, "category": ticket["category"]}


@node("tool_call", kind="tool")
async def call_tool(tool: str, args: dict, rng: random.Random) -> str:
    await asyncio.sleep(_sleep_s(rng, 3))
    if rng.random() < 0.08:
        raise TimeoutError(f"{tool} timed out after 3s")
    return {
        "order_lookup": f"order {args.get('order', '?')} shipped 2 days ago via courier",
        "crm_search": f"customer {args.get('email', '?')} has 3 previous tickets",
        "shipping_status": "in transit, expected tomorrow",
        "refund_policy": "refunds within 14 days for duplicate charges",
        "device_diagnostics": "firmware 2.1.4 known to cause E4; rollback available",
        "kb_lookup": "KB-7: hold reset 10s to clear error",
    }.get(tool, "no result")


@node("react_agent", kind="agent")
async def react_agent(ticket: dict, plan: dict, rng: random.Random) -> list[str]:
    observations = []
    n = (ticket.get("simulate") or {}).get("react_iterations", 3) if plan["needs_tools"] else 1
    for i in range(n):
        tool = rng.choice(_TOOLS)
        args = {"order": ticket["description"].split("order ")[-1][:7]} if "order" in ticket["description"] else {
            "email": ticket["requester_email"]}
        thought = f"Step {i + 1}: I should check {tool} for {ticket['requester_name']}"
        record.llm_call(model="gpt-4o", input_tokens=rng.randint(800, 2500), output_tokens=rng.randint(50, 300),
                        cost_usd=round(rng.uniform(0.002, 0.008), 6))
        try:
            obs = await call_tool(tool, args, rng)
        except TimeoutError as e:
            obs = f"error: {e}"
        observations.append(obs)
        record.react_iteration(thought=thought, action=tool, action_input=args, observation=obs)
        if "KB-7" in obs or rng.random() < 0.25:
            break
    return observations


@node("vision_search", kind="retriever")
async def vision_search(ticket: dict, rng: random.Random) -> list[dict]:
    await asyncio.sleep(_sleep_s(rng, 5))
    results = [{"id": f"img-{rng.randint(1, 99)}", "score": round(rng.uniform(0.4, 0.95), 3),
                "title": rng.choice(["Printer error E4", "Screen flicker", "Login page", "Parcel label"])}
               for _ in range(rng.randint(0, 5))]
    record.retrieval("vision", query=f"{ticket['category']} screenshot", results=results,
                     attachments=ticket.get("attachments") or [])
    return results


@node("text_rag", kind="retriever")
async def text_rag(ticket: dict, rng: random.Random) -> list[dict]:
    await asyncio.sleep(_sleep_s(rng, 6))
    results = [{"id": f"kb-{rng.randint(1, 99)}", "score": round(rng.uniform(0.5, 0.97), 3),
                "title": rng.choice(["Resetting error E4", "Refund policy", "Password reset", "Delivery times"]),
                "snippet": "Customers may contact support at help@flusso.example"}
               for _ in range(rng.randint(1, 6))]
    record.retrieval("text", query=ticket["subject"], results=results)
    return results


@node("evidence_resolution", kind="chain")
async def resolve_evidence(observations, vision, text, rng: random.Random) -> float:
    await asyncio.sleep(_sleep_s(rng, 3))
    items = [{"source": r["id"], "claim": r["title"], "confidence": r["score"]} for r in (text + vision)[:6]]
    items += [{"source": "react", "claim": o[:80], "confidence": 0.7} for o in observations[:2]]
    conflicts = []
    if vision and text and rng.random() < 0.3:
        conflicts.append({"between": [text[0]["id"], vision[0]["id"]], "about": "which step fixes it"})
    record.evidence(items=items, conflicts=conflicts,
                    resolution="prefer KB article (newer)" if conflicts else "consistent")
    scores = [i["confidence"] for i in items] or [0.3]
    return round(sum(scores) / len(scores) - 0.1 * len(conflicts), 3)


@node("draft_response", kind="llm")
async def draft_response(ticket: dict, confidence: float, rng: random.Random) -> str:
    await asyncio.sleep(_sleep_s(rng, 5))
    record.llm_call(model="gpt-4o", input_tokens=rng.randint(1500, 4000), output_tokens=rng.randint(150, 600),
                    cost_usd=round(rng.uniform(0.004, 0.012), 6))
    text = (f"Hello {ticket['requester_name']},\n\nthank you for contacting us about \"{ticket['subject']}\". "
            f"We checked your case and {'found the fix' if confidence > 0.6 else 'need a colleague to look at it'}. "
            f"We will reply to {ticket['requester_email']} within 24 hours.\n\nBest regards,\nFlusso Support")
    record.draft(text)
    escalate = confidence < 0.6 or ticket["priority"] == "urgent"
    record.decision("escalate", "yes" if escalate else "no",
                    "low confidence" if confidence < 0.6 else ("urgent ticket" if escalate else "high confidence"),
                    confidence)
    return text


@workflow("flusso_ticket")
async def handle_ticket(ticket: dict) -> dict:
    """Handle one ticket end to end; returns a small summary. Raises for ~5% of tickets
    (simulated crash) so FAILED logs exist."""
    rng = _rng_for(ticket)
    sim = ticket.get("simulate") or {}
    await fetch_ticket(ticket, rng)
    if sim.get("slow"):
        await asyncio.sleep(_sleep_s(rng, 40))
    plan = await planner(ticket, rng)
    observations = await react_agent(ticket, plan, rng) if plan["needs_tools"] else []
    vision, text = await asyncio.gather(vision_search(ticket, rng), text_rag(ticket, rng))
    if sim.get("fail"):
        raise RuntimeError(f"draft service unavailable for {ticket['requester_email']}")
    confidence = await resolve_evidence(observations, vision, text, rng)
    draft = await draft_response(ticket, confidence, rng)
    escalated = confidence < 0.6 or ticket["priority"] == "urgent"
    status = "PARTIAL" if escalated and confidence < 0.5 else "SUCCESS"
    record.outcome(status, "escalated" if escalated else "resolved",
                   overall_confidence=max(0.0, min(1.0, confidence)),
                   hallucination_risk=round(max(0.0, min(1.0, 1 - confidence + rng.uniform(-0.1, 0.1))), 3))
    record.metric("customer_sentiment", round(rng.uniform(-1, 1), 2))
    return {"ticket_id": ticket["ticket_id"], "status": status, "escalated": escalated, "draft_chars": len(draft)}
