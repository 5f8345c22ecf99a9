"""`make demo`: the main job against the embedded mock. Grows with each issue."""

from __future__ import annotations


def main() -> int:
    print("the demo lands with the mock server (issue: Foundation and the mock Realtime server)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
