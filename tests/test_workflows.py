"""The CI workflows' scripts (ci/) against the SIMULATED estate and a fake GitHub / Azure DevOps API.

Every step the workflows run is a script in ci/; these tests run those scripts as the workflows
do (bash, environment variables), with the real Pulumi CLI on a copy of the project whose `local`
stack points at three simulated hosts, and with the REST API served by a tiny in-memory server
that records every request. The workflow files themselves are linted: actionlint for GitHub
Actions, Microsoft's published schema for Azure Pipelines (tests/support/azure_pipelines.py).

The rendered comment and issue are written to docs/examples/ when USERCUBE_UPDATE_EXAMPLES=1, and
otherwise compared with the committed files, which the README includes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from devhost import iis
from tests.support import azure_pipelines
from tests.support.estate import AGENTS_KEY, LOCAL_HOST_PASSWORD, EstateProject, SimulatedEstate, start_estate
from tests.support.hosts import Target

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "ci"
EXAMPLES = ROOT / "docs" / "examples"
TOKEN = "ghs_fake-token-for-the-tests-0123456789"
AZURE_TOKEN = "azure-fake-job-token-0123456789"
REPO = "contoso/usercube-iac"
MARKER = "<!-- usercube-preview:local -->"


# -- a fake REST API ---------------------------------------------------------------------------


@dataclass
class FakeApi:
    """GitHub's issues/comments/labels and Azure DevOps' pull-request threads, in memory."""

    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    threads: dict[int, dict[str, Any]] = field(default_factory=dict)
    work_items: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1
    url: str = ""

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def methods(self, kind: str) -> list[str]:
        return [method for method, path, _ in self.requests if kind in path and method != "GET"]

    def handle(self, method: str, raw_path: str, body: Any, auth: str | None) -> tuple[int, Any]:
        parsed = urlparse(raw_path)
        path, query = parsed.path, {k: v[0] for k, v in parse_qs(parsed.query).items()}
        self.requests.append((method, raw_path, body))
        if path.startswith("/azure/"):
            if auth != f"Bearer {AZURE_TOKEN}":
                return 401, {"message": "bad token"}
            return self.azure(method, path, body)
        if auth != f"Bearer {TOKEN}":
            return 401, {"message": "Bad credentials"}
        prefix = f"/repos/{REPO}"
        if not path.startswith(prefix):
            return 404, {"message": "Not Found"}
        path = path.removeprefix(prefix)
        if match := re.fullmatch(r"/issues/(\d+)/comments", path):
            issue = int(match[1])
            if method == "GET":
                found = [c for c in self.comments.values() if c["issue"] == issue]
                page, size = int(query.get("page", 1)), int(query.get("per_page", 30))
                return 200, found[(page - 1) * size : page * size]
            comment = {"id": self.new_id(), "issue": issue, "body": body["body"]}
            self.comments[comment["id"]] = comment
            return 201, comment
        if (match := re.fullmatch(r"/issues/comments/(\d+)", path)) and method == "PATCH":
            self.comments[int(match[1])]["body"] = body["body"]
            return 200, self.comments[int(match[1])]
        if path == "/issues" and method == "GET":
            found = [i for i in self.issues.values() if i["state"] == query["state"] and query["labels"] in i["labels"]]
            return 200, found
        if path == "/issues" and method == "POST":
            number = self.new_id()
            self.issues[number] = {"number": number, "state": "open", **body}
            return 201, self.issues[number]
        if (match := re.fullmatch(r"/issues/(\d+)", path)) and method == "PATCH":
            self.issues[int(match[1])].update(body)
            return 200, self.issues[int(match[1])]
        if path == "/labels" and method == "POST":
            return 201, body
        return 404, {"message": "Not Found"}

    def azure(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        boards = "/azure/org/Identity%20Manager/_apis/wit"
        if path == f"{boards}/wiql" and method == "POST":
            tag = re.search(r"CONTAINS '([^']+)'", body["query"])
            closed = re.search(r"\[System.State\] <> '([^']+)'", body["query"])
            assert tag and closed, body
            found = [
                {"id": number}
                for number, fields in self.work_items.items()
                if tag[1] in fields["System.Tags"] and fields["System.State"] != closed[1]
            ]
            return 200, {"workItems": found}
        if path.startswith(f"{boards}/workitems/"):
            fields = {op["path"].removeprefix("/fields/"): op["value"] for op in body if op["op"] == "add"}
            if method == "POST" and path == f"{boards}/workitems/$Issue":
                number = self.new_id()
                self.work_items[number] = {"System.State": "To Do", **fields}
                return 200, {"id": number}
            if method == "PATCH":
                self.work_items[int(path.rsplit("/", 1)[-1])].update(fields)
                return 200, {}
        base = "/azure/org/Identity%20Manager/_apis/git/repositories/repo-id/pullRequests/42/threads"
        if path == base and method == "GET":
            return 200, {"value": list(self.threads.values()), "count": len(self.threads)}
        if path == base and method == "POST":
            thread = {"id": self.new_id(), **body}
            thread["comments"] = [{**body["comments"][0], "id": 1}]
            self.threads[thread["id"]] = thread
            return 200, thread
        if (match := re.fullmatch(re.escape(base) + r"/(\d+)/comments/(\d+)", path)) and method == "PATCH":
            comment = self.threads[int(match[1])]["comments"][int(match[2]) - 1]
            comment["content"] = body["content"]
            return 200, comment
        return 404, {"message": "Not Found"}


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = fake.handle(self.command, self.path, body, self.headers.get("Authorization"))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


# -- the estate and the scripts ----------------------------------------------------------------


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory, target: Target) -> Iterator[SimulatedEstate]:
    if not target.simulated:
        pytest.skip("an estate of three hosts runs on simulated hosts")
    yield from start_estate(tmp_path_factory.mktemp("estate"), ["server", "zone-a", "zone-b"])


@pytest.fixture
def local(tmp_path: Path, estate: SimulatedEstate) -> Iterator[EstateProject]:
    """A copy of the project whose `local` stack points at the estate; destroyed afterwards (the
    hosts are shared by the module's tests)."""
    project = EstateProject(tmp_path, estate)
    yield project
    project.write()
    project.run("destroy")


WRAPPER = """\
import runpy, sys
from pathlib import Path
from stackrun.cli import main
project = Path(sys.argv[1])
def program():
    runpy.run_path(str(project / "__main__.py"), run_name="__main__")
raise SystemExit(main(sys.argv[2:], program=program, work_dir=project))
"""


def run_script(local: EstateProject, api: FakeApi, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``ci/<script> local`` as a workflow step runs it, on the copy of the project."""
    if not local.stack_file.exists():
        local.write()
    wrapper = local.root / "stackrun_copy.py"
    wrapper.write_text(WRAPPER, encoding="utf-8")
    environ = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        **{name: os.environ[name] for name in ("PYTHONPATH", "USERCUBE_IAC_CACHE", "GOPATH") if name in os.environ},
        # `python -m stackrun` on the project copy (in CI: the repository itself, the default).
        "STACKRUN": f"{sys.executable} {wrapper} {local.project}",
        "PROJECT_DIR": str(local.project),
        "PULUMI_BACKEND_URL": f"file://{local.backend}",
        "PULUMI_CONFIG_PASSPHRASE": local.passphrase,
        "GITHUB_API_URL": api.url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_TOKEN": TOKEN,
        "PR_NUMBER": "42",
        **env,
    }
    done = subprocess.run(
        ["bash", str(CI / script), "local"], env=environ, capture_output=True, text=True, check=False, timeout=600
    )
    for text in (done.stdout, done.stderr):
        for secret in (TOKEN, AZURE_TOKEN, local.passphrase, LOCAL_HOST_PASSWORD):
            assert secret not in text, f"{script} printed a secret"
    return done


def check_example(name: str, text: str) -> None:
    path = EXAMPLES / name
    if os.environ.get("USERCUBE_UPDATE_EXAMPLES") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"{path} is stale: rerun with USERCUBE_UPDATE_EXAMPLES=1"


def no_secret_in(text: str, local: EstateProject) -> None:
    for secret in (TOKEN, local.passphrase, LOCAL_HOST_PASSWORD):
        assert secret not in text


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.engine
def test_a_pull_request_gets_one_comment_per_stack_edited_in_place(local: EstateProject, api: FakeApi) -> None:
    code, text = local.run("up")
    assert code == 0, text
    config = local.config()
    zone_a = next(agent for agent in config[AGENTS_KEY] if agent["name"] == "zone-a")
    zone_a["hostName"] = "agent-zone-a2.contoso.example"
    zone_a["settings"]["agentIdentifier"] = "Contoso-zone-a-renamed"
    local.write(config)

    done = run_script(local, api, "preview-comment.sh")
    assert done.returncode == 0, done.stderr
    assert api.methods("/comments") == ["POST"]
    (comment,) = api.comments.values()
    body = comment["body"]
    assert body.startswith(MARKER + "\n")
    assert "**3 resources change** (3 to update)." in body  # the binding, the settings, the check of that name
    assert '`bindings[0].host_header` | <code>"agent-zone-a.contoso.example"</code> | ' in body
    assert "`json_content.OpenId.AgentIdentifier`" in body
    no_secret_in(body, local)
    check_example("pr-comment.md", body.removeprefix(MARKER + "\n"))

    # The same commit again: the same comment, edited in place, the same body.
    done = run_script(local, api, "preview-comment.sh")
    assert done.returncode == 0, done.stderr
    assert api.methods("/comments") == ["POST", "PATCH"]
    assert list(api.comments.values()) == [comment] and comment["body"] == body

    # The pull request reverted: still that comment, saying so.
    local.write()
    done = run_script(local, api, "preview-comment.sh")
    assert done.returncode == 0, done.stderr
    assert len(api.comments) == 1 and comment["body"] == f"{MARKER}\n### Preview of stack `local`\n\nNo changes.\n"

    # A broken stack file: the preview fails, the comment carries the error, the step fails.
    broken = local.config()
    broken[AGENTS_KEY][1]["hostNme"] = broken[AGENTS_KEY][1].pop("hostName")
    local.write(broken)
    done = run_script(local, api, "preview-comment.sh")
    assert done.returncode == 1, done.stderr
    assert len(api.comments) == 1
    assert "**The preview failed.**" in comment["body"]
    assert "hostNme" in comment["body"] and "did you mean 'hostName'?" in comment["body"], comment["body"]
    no_secret_in(comment["body"], local)

    # Azure DevOps: one thread, its first comment edited in place.
    local.write(config)
    azure = {
        "SYSTEM_ACCESSTOKEN": AZURE_TOKEN,
        "SYSTEM_COLLECTIONURI": f"{api.url}/azure/org/",
        "SYSTEM_TEAMPROJECT": "Identity Manager",
        "BUILD_REPOSITORY_ID": "repo-id",
        "SYSTEM_PULLREQUEST_PULLREQUESTID": "42",
    }
    for _ in range(2):
        done = run_script(local, api, "azure-pr-thread.sh", **azure)
        assert done.returncode == 0, done.stderr
    assert api.methods("/threads") == ["POST", "PATCH"]
    (thread,) = api.threads.values()
    assert thread["status"] == 1 and thread["comments"][0]["content"] == body


@pytest.mark.engine
def test_the_nightly_drift_check_keeps_one_issue_until_up_repairs_the_drift(local: EstateProject, api: FakeApi) -> None:
    code, text = local.run("up")
    assert code == 0, text
    done = run_script(local, api, "drift-issue.sh")
    assert done.returncode == 0, done.stderr
    assert api.issues == {}, "no drift, no issue"

    zone_a = local.estate.hosts["zone-a"]
    assert zone_a.state_dir is not None
    iis.admin_set_pool_attribute(
        zone_a.state_dir, "IdentityManagerAgentContoso", "processModel/idleTimeout", "00:20:00"
    )
    bodies = []
    for _ in range(2):  # two nights, the same drift: one issue, the same body
        done = run_script(local, api, "drift-issue.sh")
        assert done.returncode == 0, done.stderr
        (issue,) = api.issues.values()
        bodies.append(issue["body"])
    assert bodies[0] == bodies[1]
    assert issue["labels"] == ["drift:local"] and issue["state"] == "open" and issue["title"] == "Drift in stack local"
    assert [m for m, p, _ in api.requests if "/issues" in p and m != "GET"] == ["POST", "PATCH"]
    body = bodies[0]
    assert "**1 resource drifted** (1 to update)" in body
    assert "| `idle_timeout_minutes` | <code>20</code> | <code>0</code> |" in body
    assert "zone-a-pool" in body and "zone-a-site" not in body
    no_secret_in(body, local)
    check_example("drift-issue.md", body)

    # Azure DevOps: one work item, tagged, its description the same report.
    azure = {
        "SYSTEM_ACCESSTOKEN": AZURE_TOKEN,
        "SYSTEM_COLLECTIONURI": f"{api.url}/azure/org/",
        "SYSTEM_TEAMPROJECT": "Identity Manager",
    }
    for _ in range(2):
        done = run_script(local, api, "azure-drift-workitem.sh", **azure)
        assert done.returncode == 0, done.stderr
    (item,) = api.work_items.values()
    assert item["System.Tags"] == "drift:local" and item["System.Description"] == body
    assert item["/multilineFieldsFormat/System.Description"] == "Markdown"

    done = run_script(local, api, "deploy.sh")
    assert done.returncode == 0, done.stderr
    done = run_script(local, api, "drift-issue.sh")
    assert done.returncode == 0, done.stderr
    assert issue["state"] == "closed" and issue["state_reason"] == "completed"
    done = run_script(local, api, "azure-drift-workitem.sh", **azure)
    assert done.returncode == 0, done.stderr
    assert item["System.State"] == "Done"
    closing = [c["body"] for c in api.comments.values() if c["issue"] == issue["number"]]
    assert closing == ["No drift any more in stack `local`: closing.\n"]


# -- the workflow files ------------------------------------------------------------------------

WORKFLOWS = ROOT / ".github" / "workflows"
PIPELINES = ROOT / "azure-pipelines"


def actionlint() -> str:
    done = subprocess.run([str(ROOT / "tools" / "ensure-actionlint.sh")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"could not provide actionlint:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def test_github_workflows_pass_actionlint() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["deploy.yml", "drift.yml", "preview.yml"]
    done = subprocess.run(
        [actionlint(), "-no-color", *map(str, files)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def steps_of(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for job in (document.get("jobs") or {}).values():
        yield from job.get("steps") or []
    for stage in document.get("stages") or []:
        for job in stage.get("jobs") or []:
            yield from job.get("steps") or []
            strategy = (job.get("strategy") or {}).get("runOnce") or {}
            yield from (strategy.get("deploy") or {}).get("steps") or []


def scripts_run(text: str) -> set[str]:
    return set(re.findall(r"\bci/[\w-]+\.sh\b", text))


def test_every_workflow_step_is_a_script_of_the_repository_and_never_echoes_a_secret() -> None:
    files = [*WORKFLOWS.glob("*.yml"), *PIPELINES.glob("*.yml")]
    for path in files:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
        for step in steps_of(document):
            script = step.get("run") or step.get("bash") or step.get("script") or ""
            for line in str(script).splitlines():
                assert re.fullmatch(r'(ci|tools)/[\w.-]+\.sh( "?[\w${}().-]+"?)*', line.strip()), (path.name, line)
        # Secrets only ever reach a step as environment variables, never on a command line.
        for line in text.splitlines():
            if re.search(r"secrets\.|\$\(System\.AccessToken\)|\$\(PULUMI_", line):
                assert re.match(r"\s+[A-Z_]+: ", line), (path.name, line)
        assert "set -x" not in text and "echo $" not in text
    for script in CI.glob("*.sh"):
        text = script.read_text(encoding="utf-8")
        if script.name != "lib.sh":
            assert "set -euo pipefail" in text, script.name
        assert not re.search(r"^\s*set -[a-z]*x", text, flags=re.MULTILINE), script.name
        assert not re.search(r"echo .*(TOKEN|PASSPHRASE|ACCESSTOKEN)", text), script.name
    used = set().union(*(scripts_run(p.read_text(encoding="utf-8")) for p in files))
    assert used == {
        "ci/setup.sh",
        "ci/preview-comment.sh",
        "ci/azure-pr-thread.sh",
        "ci/deploy.sh",
        "ci/drift-issue.sh",
        "ci/azure-drift-workitem.sh",
    }
    for name in used:
        assert (ROOT / name).exists()


def test_the_ci_scripts_parse() -> None:
    for script in CI.glob("*.sh"):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr


def test_azure_pipelines_match_microsofts_schema() -> None:
    """Each pipeline against the schema the Azure Pipelines editor validates with (every key, task
    name and version, task input, trigger and schedule); see tests/support/azure_pipelines.py."""
    for path in sorted(PIPELINES.glob("*.yml")):
        assert azure_pipelines.problems(azure_pipelines.load(path.read_text(encoding="utf-8"))) == [], path.name


@pytest.mark.parametrize(
    ("mistake", "change", "reported"),
    [
        ("a task input misspelt", lambda steps: steps[2]["inputs"].update({"versoin": "1.25.11"}), "versoin"),
        ("a task version that does not exist", lambda steps: steps[2].update({"task": "GoTool@9"}), "GoTool@9"),
        ("a step key Azure does not know", lambda steps: steps[5].update({"enviroment": {}}), "enviroment"),
        (
            "a step whose form is not its first key",
            lambda steps: steps.insert(0, {"displayName": "x", "bash": "x"}),
            "comes first",
        ),
        ("a boolean Azure does not read as one", lambda steps: steps[5].update({"continueOnError": "maybe"}), "maybe"),
    ],
)
def test_the_schema_check_refuses_what_azure_refuses(mistake: str, change: Any, reported: str) -> None:
    document = azure_pipelines.load((PIPELINES / "drift.yml").read_text(encoding="utf-8"))
    change(document["stages"][0]["jobs"][0]["steps"])
    found = azure_pipelines.problems(document)
    assert any(reported in problem for problem in found), (mistake, found)


def test_azure_pipelines_deploy_in_order_through_environments() -> None:
    """What the schema cannot say: deployments to an environment are `deployment` jobs (approvals are
    configured on the Environment in Azure DevOps, where the pipeline cannot grant them itself), prod
    after staging, the drift check runs every night and the preview only on pull requests."""
    found = {path.name: yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(PIPELINES.glob("*.yml"))}
    assert sorted(found) == ["deploy.yml", "drift.yml", "preview.yml"]
    deploy = found["deploy.yml"]
    names = [stage["stage"] for stage in deploy["stages"]]
    assert names == ["staging", "prod"]
    assert deploy["stages"][1]["dependsOn"] == "staging"
    for stage in deploy["stages"]:
        assert all("deployment" in job and "job" not in job for job in stage["jobs"]), stage["stage"]
    environments = [job["environment"] for stage in deploy["stages"] for job in stage["jobs"]]
    assert environments == ["usercube-staging", "usercube-prod"]
    assert found["drift.yml"]["schedules"][0]["always"] is True
    assert found["preview.yml"]["trigger"] == "none"


def test_the_readme_shows_the_examples_the_tests_render() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Pull requests and the nightly drift check" in readme
    for name in ("pr-comment.md", "drift-issue.md"):
        start = f"<!-- example: docs/examples/{name} -->\n"
        shown = readme[readme.index(start) + len(start) : readme.index("<!-- end example -->", readme.index(start))]
        assert shown == (EXAMPLES / name).read_text(encoding="utf-8"), f"README's copy of {name} is stale"
    for command in ("--kind preview", "--kind drift", "ci/preview-comment.sh", "ci/drift-issue.sh", "ci/deploy.sh"):
        assert command in readme
