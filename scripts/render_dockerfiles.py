"""Render services/<svc>/Dockerfile of every Python service from one template.

The four Python images differ only in the service's name, its port, its worker commands and
the first-party packages it imports; everything else (pinned base, multi-stage build, non-root
user, health check, entry point) is scripts/python-service.Dockerfile.in, so the images cannot
drift apart. The COPY lines are computed from the code: the packages a service imports,
followed transitively (`commerce.*` -> gen/python, `clients`, `services.<pkg>`), minus the
local-only code that .dockerignore keeps out of every image. `--check` (run by
`make k8s-check`) exits 1 when a committed Dockerfile differs from a fresh render.

    .venv/bin/python scripts/render_dockerfiles.py [--check]
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "scripts/python-service.Dockerfile.in"
# Code inside an imported package that never ships (also excluded in .dockerignore).
LOCAL_ONLY = ("services/payments/sandbox",)
GENERATED = "gen/python"  # the `commerce.*` protobuf/gRPC modules


def python_services() -> tuple[str, ...]:
    """Every folder of services/ that is a Python service process (it has a bootstrap)."""
    return tuple(sorted(p.parent.name for p in (REPO / "services").glob("*/bootstrap.py")))


def _sources(package: str) -> Iterator[Path]:
    for path in sorted((REPO / package).rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if not any(relative.startswith(f"{local}/") for local in LOCAL_ONLY):
            yield path


def file_imports(path: Path) -> set[str]:
    """Absolute module names one Python file imports (`from a import b` gives a and a.b)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def imported_modules(package: str) -> set[str]:
    """Absolute module names imported anywhere in `package` (a repository-relative folder)."""
    return {module for path in _sources(package) for module in file_imports(path)}


def _package_of(module: str) -> str | None:
    """The repository folder that ships `module`, or None for third-party/stdlib modules."""
    parts = module.split(".")
    if parts[0] == "commerce":
        return GENERATED
    if parts[0] == "clients":
        return "clients"
    if parts[0] == "services" and len(parts) > 1 and (REPO / "services" / parts[1]).is_dir():
        return f"services/{parts[1]}"
    return None


def packages(service: str) -> list[str]:
    """The folders the image of `service` must contain, in COPY order."""
    needed, todo = set(), [f"services/{service}"]
    while todo:
        package = todo.pop()
        if package in needed:
            continue
        needed.add(package)
        if package != GENERATED:
            todo += [p for m in imported_modules(package) if (p := _package_of(m))]
    for module in (m for p in needed if p != GENERATED for m in imported_modules(p)):
        for local in LOCAL_ONLY:
            if module.replace(".", "/").startswith(local):
                raise SystemExit(f"{service} imports local-only {module}: it would not ship")
    own = f"services/{service}"
    order = [GENERATED, "clients", "services/chassis"]
    rest = sorted(needed - {*order, own})
    return [p for p in order if p in needed] + rest + [own]


def commands(service: str) -> list[str]:
    """The worker commands from the usage line of services/<service>/__main__.py."""
    source = (REPO / "services" / service / "__main__.py").read_text()
    usage = re.search(rf"usage: python -m services\.{service} \[([a-z|-]+)", source)
    if usage is None:
        raise SystemExit(f"services/{service}/__main__.py has no usage line")
    return [c for c in usage.group(1).split("|") if c != "serve"]


def port(service: str) -> int:
    """The default port of the service's settings (services/<service>/config.py)."""
    tree = ast.parse((REPO / "services" / service / "config.py").read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "port"
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, int)
        ):
            return node.value.value
    raise SystemExit(f"services/{service}/config.py declares no default port")


def render(service: str) -> str:
    copies = [f"COPY {p} /app/{p}" for p in packages(service)]
    copies.insert(copies.index("COPY services/chassis /app/services/chassis"),
                  "COPY services/__init__.py /app/services/__init__.py")  # fmt: skip
    values = {
        "{service}": service,
        "{SERVICE}": service.upper(),
        "{port}": str(port(service)),
        "{workers}": "|".join(commands(service)),
        "{copies}": "\n".join(copies),
    }
    text = TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a Dockerfile is stale")
    parser.add_argument("--out-dir", type=Path, help="write <svc>.Dockerfile files here instead")
    args = parser.parse_args(argv)
    stale = []
    for service in python_services():
        text = render(service)
        target = (
            args.out_dir / f"{service}.Dockerfile"
            if args.out_dir
            else REPO / "services" / service / "Dockerfile"
        )
        if not args.check:
            target.write_text(text)
            continue
        current = target.read_text() if target.exists() else ""
        if current != text:
            stale.append(target)
            sys.stderr.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True), text.splitlines(keepends=True),
                    f"{target} (committed)", f"{target} (rendered)",
                )
            )  # fmt: skip
    if stale:
        print(
            "render-dockerfiles: stale "
            + ", ".join(str(p.relative_to(REPO) if p.is_relative_to(REPO) else p) for p in stale)
            + "; run .venv/bin/python scripts/render_dockerfiles.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
