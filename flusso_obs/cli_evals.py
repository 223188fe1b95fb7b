"""`flusso-obs evals create | list | rerun | disable | enable | delete`: online evaluators
(docs/evaluations.md)."""
from __future__ import annotations

import sys
from datetime import UTC, datetime

from config.server import ServerSettings

from .database import database, migrate, run_store
from .errors import CliError


def _when(text: str, flag: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{flag}: expected an ISO date or time (e.g. 2026-12-01 or 2026-12-01T10:00Z),"
                       f" got {text[:40]!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cmd_evals_create(args, settings: ServerSettings) -> None:
    from collector_api.evals.admin import create_evaluator
    from collector_api.evals.spec import EvaluatorError, validate_evaluator

    try:
        spec = validate_evaluator(name=args.name, kind=args.kind, client_id=args.client, sample_rate=args.sample,
                                  workflow=args.workflow, status=args.status, patterns=args.phrase or None,
                                  rubric=_rubric(args), cost_cap=args.cost_cap)
        with database(settings) as dsn:
            migrate(dsn)
            ev = run_store(dsn, lambda pool: create_evaluator(pool, spec))
    except EvaluatorError as exc:
        raise CliError(f"--{exc.field.replace('_', '-')}: {exc}") from None
    print(f"created evaluator {ev.name!r} ({ev.kind}, version {ev.version}) for {ev.client_id or 'every tenant'},"
          f" sampling {ev.sample_rate:g}")
    if ev.is_judge and not (settings.flusso_judge_url or "").strip():
        print("note: FLUSSO_JUDGE_URL is unset, so this judge scores nothing until it is set", file=sys.stderr)


def _rubric(args) -> str | None:
    if args.rubric_file is None:
        return None
    try:
        with open(args.rubric_file, encoding="utf-8") as fh:
            return fh.read(20_000)
    except OSError as exc:
        raise CliError(f"--rubric-file: {exc}") from None


def cmd_evals_list(args, settings: ServerSettings) -> None:
    from collector_api.evals.admin import list_evaluators

    with database(settings) as dsn:
        rows = run_store(dsn, list_evaluators)
    print(f"{'NAME':<24} {'KIND':<15} {'VER':>4} {'CLIENT':<14} {'SAMPLE':>7} {'FILTERS':<22} {'MONTH USD':>10}"
          f" {'CAP USD':>9} {'INVALID':>8}")
    for s in rows:
        e = s.evaluator
        filters = ",".join(f for f in (e.filter_workflow, e.filter_status) if f) or "-"
        cap = f"{e.monthly_cost_cap_usd:.2f}" if e.monthly_cost_cap_usd is not None else "-"
        print(f"{e.name[:24]:<24} {e.kind:<15} {e.version:>4} {(e.client_id or '*'):<14} {e.sample_rate:>7g}"
              f" {filters[:22]:<22} {s.month_cost_usd:>10.4f} {cap:>9} {s.invalid:>8}"
              + (" AT CAP" if s.at_cap else "") + ("" if e.enabled else " (disabled)"))


def cmd_evals_rerun(args, settings: ServerSettings) -> None:
    from collector_api.evals.admin import new_version
    from collector_api.evals.job import EvalConfig, rerun
    from collector_api.evals.spec import evaluator_from_row
    from collector_api.store.evals.evaluators import evaluator_by_name

    from .jobs import judge_config

    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    if until <= since:
        raise CliError("--until must be later than --since")
    try:
        config = EvalConfig(judge=judge_config(settings))
    except ValueError as exc:  # JudgeConfigError: names FLUSSO_JUDGE_URL
        raise CliError(str(exc)) from None

    async def work(pool):
        row = await evaluator_by_name(pool, args.evaluator)
        if row is None:
            raise CliError(f"--evaluator: no evaluator {args.evaluator!r} (see `flusso-obs evals list`)")
        if row["kind"] == "judge" and config.judge is None:
            raise CliError("--evaluator: a judge needs FLUSSO_JUDGE_URL")
        ev = evaluator_from_row(row) if args.same_version else await new_version(pool, args.evaluator)
        return ev, await rerun(pool, config, ev, since, until, args.client)

    with database(settings) as dsn:
        migrate(dsn)
        ev, report = run_store(dsn, work)
    print(f"{ev.name} version {ev.version}: {report.logs} log(s) looked at, {report.scores} score(s) stored,"
          f" outcomes {report.outcomes or '{}'}")


def cmd_evals_change(args, settings: ServerSettings) -> None:
    from collector_api.evals.admin import change_evaluator
    from collector_api.evals.spec import EvaluatorError

    action = args.evals_command
    try:
        with database(settings) as dsn:
            migrate(dsn)
            ev = run_store(dsn, lambda pool: change_evaluator(pool, args.name, action, args.client))
    except EvaluatorError as exc:
        raise CliError(f"{'--client' if exc.field == 'client' else 'NAME'}: {exc}") from None
    done = {"disable": "disabled", "enable": "enabled", "delete": "deleted"}[action]
    print(f"{done} evaluator {ev.name!r} ({ev.kind}, version {ev.version})"
          + ("; its scores stay, under its name (docs/evaluations.md)" if action == "delete" else ""))


def add_evals(sub) -> None:
    from collector_api.evals.spec import KINDS, STATUSES

    evals = sub.add_parser("evals", help="online evaluators: create, list, rerun, disable, enable, delete",
                           description="Online evaluators; see docs/evaluations.md.")
    acts = evals.add_subparsers(dest="evals_command", required=True, metavar="ACTION")
    p = acts.add_parser("create", help="create an evaluator")
    p.add_argument("--name", required=True, help="a-z, 0-9, '_', '.', '-' (at most 64)")
    p.add_argument("--kind", required=True, help=f"one of {', '.join(KINDS)}")
    p.add_argument("--client", default=None, help="one tenant (default: every tenant)")
    p.add_argument("--sample", default="1", help="share of logs evaluated, (0, 1] (default 1)")
    p.add_argument("--workflow", default=None, help="only logs of this workflow name")
    p.add_argument("--status", default=None, help=f"only logs of this status: {', '.join(STATUSES)}")
    p.add_argument("--phrase", action="append", help="policy: a forbidden phrase ('*' = a few words); repeat it")
    p.add_argument("--rubric-file", default=None, help="judge: the rubric template (see docs/evaluations.md)")
    p.add_argument("--cost-cap", default=None, help="judge: monthly cost cap in USD (required for a judge)")
    p.set_defaults(fn=cmd_evals_create)
    p = acts.add_parser("list", help="list evaluators with this month's judge spend")
    p.set_defaults(fn=cmd_evals_list)
    p = acts.add_parser("rerun", help="score logs executed in a range again, under a new version")
    p.add_argument("--evaluator", required=True, help="the evaluator's name")
    p.add_argument("--since", required=True, help="from (ISO date or time, UTC unless given)")
    p.add_argument("--until", required=True, help="until, exclusive")
    p.add_argument("--client", default=None, help="only this tenant")
    p.add_argument("--same-version", action="store_true",
                   help="keep the version: score only what it has not scored (and retry errors)")
    p.set_defaults(fn=cmd_evals_rerun)
    for action, text in (("disable", "stop an evaluator (it stays listed; enable resumes it)"),
                         ("enable", "resume a disabled evaluator"),
                         ("delete", "delete an evaluator: it stops and leaves the list, its scores stay under its"
                                    " name, which is not reused")):
        p = acts.add_parser(action, help=text)
        p.add_argument("name", metavar="NAME", help="the evaluator's name")
        p.add_argument("--client", default=None,
                       help="only if the evaluator is this tenant's own (refused otherwise)")
        p.set_defaults(fn=cmd_evals_change)
