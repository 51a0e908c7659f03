"""The Dockerfiles follow the project's image rules (hadolint is not installable here, so the
rules that matter for these images are written down and checked here):

1. every base image is pinned: a digest, or an exact `major.minor.patch` release tag (`scratch`
   needs none); never `latest`;
2. multi-stage: a build stage and a final stage;
3. the final stage runs as a numeric, non-root USER (so Kubernetes' runAsNonRoot can verify it);
4. no build tools in the final stage: no package manager, compiler, `pip install` or `go build`
   runs there, and it copies only named paths (never the whole context);
5. a HEALTHCHECK, or a `# k8s-probes:` comment saying the image relies on Kubernetes probes;
6. no ADD (COPY is explicit; ADD of a URL fetches unpinned bytes at build time);
7. ENTRYPOINT in exec (JSON) form, so the service is PID 1 and receives SIGTERM to drain;
8. no secret-looking ENV or ARG;
9. the image runs the service its folder names, and EXPOSEs the port its Kubernetes manifest
   serves;
10. a Dockerfile for every deployed service (gateway included);
11. the Python services' Dockerfiles are rendered from one template
    (scripts/python-service.Dockerfile.in, scripts/render_dockerfiles.py) and must be fresh,
    so they cannot drift apart;
12. each image COPYs every first-party module its service imports (transitively), and none of
    the local-only code (the PSP sandbox), which .dockerignore keeps out of the context.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from scripts import render_dockerfiles

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("ledger", "payments", "checkout", "invoicing", "gateway")
EXACT_TAG = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
BUILD_TOOLS = re.compile(
    r"\b(apt-get\s+install|apt\s+install|apk\s+add|yum|dnf|gcc|g\+\+|make\b|"
    r"pip\s+install|go\s+(build|install)|curl|wget|git\s+clone)"
)
SECRETISH = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY)\b", re.IGNORECASE)


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]
    comments: list[str]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse(path: Path) -> Dockerfile:
    """Instructions (continuation lines joined) grouped by stage, and the comment lines."""
    logical: list[str] = []
    comments: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            comments.append(line)
            continue
        if not line:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args.strip()))
    return Dockerfile(path, stages, comments)


def of(stage: Stage, keyword: str) -> list[str]:
    return [i.args for i in stage.instructions if i.keyword == keyword]


def dockerfile_of(service: str) -> Dockerfile:
    return parse(REPO / "services" / service / "Dockerfile")


def served_port(service: str) -> int:
    deployment = yaml.safe_load((REPO / f"k8s/base/{service}/deployment.yaml").read_text())
    port: int = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    return port


@pytest.mark.parametrize("service", SERVICES)
def test_there_is_a_dockerfile_per_deployed_service(service):
    assert (REPO / "services" / service / "Dockerfile").is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_base_images_are_pinned(service):
    dockerfile = dockerfile_of(service)
    aliases = {s.name for s in dockerfile.stages if s.name}
    for stage in dockerfile.stages:
        image = stage.image
        if image == "scratch" or image in aliases:
            continue
        assert DIGEST.search(image) or EXACT_TAG.match(image), f"{image} is not pinned"
        assert not image.endswith(":latest")


@pytest.mark.parametrize("service", SERVICES)
def test_build_is_multi_stage(service):
    dockerfile = dockerfile_of(service)
    assert len(dockerfile.stages) >= 2
    assert all(stage.name for stage in dockerfile.stages), "name every stage (FROM … AS name)"
    copied_from = [a for a in of(dockerfile.final, "COPY") if a.startswith("--from=")]
    assert copied_from, "the final stage takes its artefacts from the build stage"


@pytest.mark.parametrize("service", SERVICES)
def test_final_stage_runs_as_numeric_non_root_user(service):
    users = of(dockerfile_of(service).final, "USER")
    assert users, "no USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), "USER must be numeric for runAsNonRoot"
    assert int(uid) != 0
    assert gid == "" or (gid.isdigit() and int(gid) != 0)


@pytest.mark.parametrize("service", SERVICES)
def test_final_stage_has_no_build_tools(service):
    final = dockerfile_of(service).final
    for command in of(final, "RUN"):
        assert not BUILD_TOOLS.search(command), f"build tooling in the final stage: {command}"
    for source in of(final, "COPY"):
        sources = [s for s in source.split() if not s.startswith("--")][:-1]
        assert "." not in sources, "the final stage copies the whole build context"


@pytest.mark.parametrize("service", SERVICES)
def test_has_a_healthcheck_or_documents_probe_reliance(service):
    dockerfile = dockerfile_of(service)
    healthchecks = of(dockerfile.final, "HEALTHCHECK")
    documented = any(c.startswith("# k8s-probes:") for c in dockerfile.comments)
    assert healthchecks or documented
    for check in healthchecks:
        command = check.split("CMD", 1)[1].strip()
        json.loads(command)  # exec form: no shell needed in the image


@pytest.mark.parametrize("service", SERVICES)
def test_no_add_instructions(service):
    dockerfile = dockerfile_of(service)
    for stage in dockerfile.stages:
        assert not of(stage, "ADD"), "use COPY; ADD of a URL fetches unpinned bytes"


@pytest.mark.parametrize("service", SERVICES)
def test_entrypoint_is_exec_form_and_runs_the_service(service):
    final = dockerfile_of(service).final
    entrypoints = of(final, "ENTRYPOINT")
    assert entrypoints
    argv = json.loads(entrypoints[-1])
    if service == "gateway":
        assert argv == ["/app/gateway"]
    else:
        assert argv == ["python", "-m", f"services.{service}"]
    for cmd in of(final, "CMD"):
        json.loads(cmd)


@pytest.mark.parametrize("service", SERVICES)
def test_no_secrets_in_env_or_args(service):
    for stage in dockerfile_of(service).stages:
        for assignment in of(stage, "ENV") + of(stage, "ARG"):
            names = re.findall(r"(\w+)=", assignment) or [assignment.split()[0]]
            for name in names:
                assert not SECRETISH.search(name), f"{name} looks like a secret"


@pytest.mark.parametrize("service", SERVICES)
def test_exposes_the_port_kubernetes_serves(service):
    exposed = {
        int(p.split("/")[0]) for e in of(dockerfile_of(service).final, "EXPOSE") for p in e.split()
    }
    assert served_port(service) in exposed


def test_dockerignore_keeps_the_context_to_what_images_copy():
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "start from nothing and allow what the Dockerfiles copy"
    for service in SERVICES:
        for source in of(dockerfile_of(service).stages[0], "COPY") + of(
            dockerfile_of(service).final, "COPY"
        ):
            if source.startswith("--from="):
                continue
            for path in source.split()[:-1]:
                top = path.split("/")[0]
                assert any(
                    allowed.lstrip("!").rstrip("/").split("/")[0] == top
                    for allowed in lines
                    if allowed.startswith("!")
                ), f"{path} is excluded from the build context"


def test_lint_catches_a_dockerfile_that_breaks_the_rules(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:3.11\n"
        "ADD https://example.com/tool.tgz /tmp/\n"
        "RUN apt-get install -y gcc\n"
        "CMD python -m services.ledger\n"
    )
    dockerfile = parse(bad)

    assert len(dockerfile.stages) == 1
    assert not EXACT_TAG.match(dockerfile.final.image)
    assert of(dockerfile.final, "ADD")
    assert not of(dockerfile.final, "USER")
    assert BUILD_TOOLS.search(of(dockerfile.final, "RUN")[0])
    with pytest.raises(json.JSONDecodeError):
        json.loads(of(dockerfile.final, "CMD")[0])


PYTHON_SERVICES = render_dockerfiles.python_services()


def test_every_python_service_is_rendered():
    assert set(PYTHON_SERVICES) == set(SERVICES) - {"gateway"}


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_python_dockerfiles_are_a_fresh_render_of_the_template(service):
    committed = (REPO / "services" / service / "Dockerfile").read_text()
    assert committed == render_dockerfiles.render(service), (
        f"services/{service}/Dockerfile is stale: run scripts/render_dockerfiles.py"
    )


def test_the_freshness_check_fails_on_a_hand_edit(tmp_path):
    assert render_dockerfiles.main(["--out-dir", str(tmp_path)]) == 0
    assert render_dockerfiles.main(["--check", "--out-dir", str(tmp_path)]) == 0
    edited = tmp_path / "payments.Dockerfile"
    edited.write_text(edited.read_text().replace("USER 65532:65532", "USER 0:0"))
    assert render_dockerfiles.main(["--check", "--out-dir", str(tmp_path)]) == 1


def _module_file(module: str) -> Path | None:
    """The file of the longest importable prefix of `module` (`from a.b import c` may name
    an attribute c of module a.b), or None when it is not first-party."""
    parts = module.split(".")
    roots = {"commerce": REPO / "gen/python", "clients": REPO, "services": REPO}
    if parts[0] not in roots:
        return None
    base = roots[parts[0]]
    for end in range(len(parts), 0, -1):
        stem = base.joinpath(*parts[:end])
        for candidate in (stem.with_suffix(".py"), stem / "__init__.py", stem.with_suffix(".pyi")):
            if candidate.is_file():
                return candidate
        if stem.is_dir():  # a namespace package (gen/python has no __init__.py files)
            return stem
    raise AssertionError(f"first-party module {module} has no file")


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_the_image_holds_every_module_its_service_imports(service):
    """Independent of the renderer: read the COPY lines of the committed Dockerfile, follow
    the service's imports file by file, and require each first-party module inside a COPY."""
    build = dockerfile_of(service).stages[0]
    copied = [REPO / args.split()[0] for args in of(build, "COPY") if not args.startswith("--")]
    local_only = [REPO / p for p in render_dockerfiles.LOCAL_ONLY]
    seen: set[Path] = set()
    todo = sorted((REPO / "services" / service).rglob("*.py"))
    todo = [p for p in todo if not any(p.is_relative_to(lo) for lo in local_only)]
    missing = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if not any(path == c or path.is_relative_to(c) for c in copied):
            missing.append(str(path.relative_to(REPO)))
        if any(path.is_relative_to(lo) for lo in local_only):
            missing.append(f"{path.relative_to(REPO)} (local-only, not shipped)")
        if path.suffix == ".py" and not path.is_relative_to(REPO / "gen/python"):
            for module in render_dockerfiles.file_imports(path):
                found = _module_file(module)
                if found is not None:
                    todo.append(found)
    assert missing == []
    assert len(seen) > 50, "the import walk found too little to be meaningful"


def test_local_only_code_stays_out_of_the_build_context():
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    for local in render_dockerfiles.LOCAL_ONLY:
        assert f"{local}/" in ignored, f"{local} is shipped in images"
