"""The "Realtime outcomes" tab in Locust's web UI, plus two plain routes.

Locust's React UI shows extra tabs declared in ``web_ui.template_args["extended_tabs"]`` /
``["extended_tables"]``, filled from an ``extended_stats`` entry that we add to every
``/stats/requests`` answer (the UI polls it every two seconds). The same numbers are served as
JSON at ``/realtime/outcomes`` and as a small HTML table at ``/realtime`` (no JavaScript needed).
"""

from __future__ import annotations

import html
import json
from typing import Any

from loadtest.locust.board import OutcomeBoard

TAB_KEY = "realtime-outcomes"
TABLE_STRUCTURE = [
    {"key": "step", "title": "Step"},
    {"key": "users", "title": "Users"},
    {"key": "outcome", "title": "Outcome"},
    {"key": "reason", "title": "Reason"},
    {"key": "count", "title": "Responses"},
    {"key": "share", "title": "% of step"},
]


def install(web_ui: Any, board: OutcomeBoard) -> None:
    """Add the tab and the routes to a running :class:`locust.web.WebUI`."""
    from flask import Response, request

    web_ui.template_args["extended_tabs"] = [{"title": "Realtime outcomes", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": TABLE_STRUCTURE}]
    web_ui.template_args["extended_csv_files"] = [
        {"href": "/realtime/outcomes.csv", "title": "Download Realtime outcomes per step (CSV)"}
    ]
    app = web_ui.app

    @app.after_request
    def _add_outcomes(response: Any) -> Any:
        if request.path.endswith("/stats/requests") and response.is_json:
            data = response.get_json(silent=True) or {}
            extended = [e for e in data.get("extended_stats") or [] if e.get("key") != TAB_KEY]
            extended.append({"key": TAB_KEY, "data": board.rows()})
            response.set_data(json.dumps({**data, "extended_stats": extended}))
        return response

    @app.route("/realtime/outcomes")
    def _outcomes() -> Any:
        return Response(json.dumps(board.snapshot()), mimetype="application/json")

    @app.route("/realtime/outcomes.csv")
    def _outcomes_csv() -> Any:
        lines = [",".join(c["key"] for c in TABLE_STRUCTURE)]
        lines += [",".join(str(r.get(c["key"], "")) for c in TABLE_STRUCTURE) for r in board.rows()]
        return Response(
            "\n".join(lines) + "\n",
            mimetype="text/csv",
            headers={"Content-Disposition": "attachment; filename=realtime_outcomes.csv"},
        )

    @app.route("/realtime")
    def _page() -> Any:
        return Response(render_page(board), mimetype="text/html")


def render_page(board: OutcomeBoard) -> str:
    snap = board.snapshot()
    head = "".join(f"<th>{html.escape(c['title'])}</th>" for c in TABLE_STRUCTURE)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c['key'], '')))}</td>" for c in TABLE_STRUCTURE) + "</tr>"
        for r in snap["rows"]
    )
    totals = ", ".join(f"{html.escape(k)}: {v}" for k, v in sorted(snap["outcomes"].items())) or "none yet"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='2'>"
        "<title>Realtime outcomes</title><style>body{font-family:sans-serif}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
        f"<h1>Realtime outcomes</h1><p>{snap['responses']} responses ({totals})</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>"
    )
