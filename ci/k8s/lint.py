"""What ci/k8s's rendered manifests must also satisfy, beyond Kubernetes' OpenAPI schema.

ci/k8s/check.sh validates the rendered manifests twice: against the OpenAPI schema
(kubernetes-validate --strict: unknown fields, wrong types, missing required fields), and with
this file. The schema leaves out rules that only kube-apiserver's validation code knows (enum
values such as completionMode, a container's image being required, restartPolicy of a Job) and it
cannot see across objects (a claim or ConfigMap that nothing renders, completions that disagree
with the SHARDS the pods are told). Without a cluster, those are checked here, for the fields
these manifests use:

    python ci/k8s/lint.py RENDERED.yaml [--scripts DIR]   # exit 0 clean, 1 problems (listed)
    python ci/k8s/lint.py --env RENDERED.yaml             # the riptide-sweep ConfigMap as KEY=VALUE lines

--scripts DIR also requires the riptide-scripts ConfigMap's shard.sh and merge.sh to be the very
files in DIR (so that check.sh's local dry run runs what the pods run). It needs PyYAML (a
dependency of kubernetes-validate).
"""

import re
import sys
from pathlib import Path

import yaml

SWEEP_JOB, MERGE_JOB = "riptide-sweep", "riptide-merge"
PARAMS, SCRIPTS, CLAIM = "riptide-sweep", "riptide-scripts", "riptide-shards"

# kube-apiserver's enums for the fields used here (pkg/apis/batch and core validation).
COMPLETION_MODES = {"NonIndexed", "Indexed"}
JOB_RESTART_POLICIES = {"Never", "OnFailure"}
PULL_POLICIES = {"Always", "Never", "IfNotPresent"}
FAILURE_ACTIONS = {"FailJob", "FailIndex", "Ignore", "Count"}
EXIT_CODE_OPERATORS = {"In", "NotIn"}
ACCESS_MODES = {"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"}
BACKENDS = {"turmoil", "madsim"}
SEEDS = re.compile(r"^[0-9]+\.\.=?[0-9]+$")
POSITIVE = re.compile(r"^[1-9][0-9]*$")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def by_kind(docs, kind):
    return {d.get("metadata", {}).get("name"): d for d in docs if d.get("kind") == kind}


def generated(names, base):
    """The rendered name of kustomize's generated `base` (with its hash suffix), or None."""
    hits = [n for n in names if n == base or re.fullmatch(re.escape(base) + r"-[a-z0-9]{10}", n or "")]
    return hits[0] if len(hits) == 1 else None


def lint_job(name, job, configmaps, claims, problems):
    where = f"job/{name}"
    spec = job.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    mode = spec.get("completionMode", "NonIndexed")
    if mode not in COMPLETION_MODES:
        problems.append(f"{where}: completionMode {mode!r} is not one of {sorted(COMPLETION_MODES)}")
    if mode == "Indexed" and not isinstance(spec.get("completions"), int):
        problems.append(f"{where}: an Indexed Job needs completions")
    for field in ("completions", "parallelism", "backoffLimit"):
        v = spec.get(field)
        if v is not None and (not isinstance(v, int) or v < 0):
            problems.append(f"{where}: {field} must be a whole number >= 0, not {v!r}")
    restart = pod.get("restartPolicy")
    if restart not in JOB_RESTART_POLICIES:
        problems.append(f"{where}: restartPolicy {restart!r}: a Job's must be one of {sorted(JOB_RESTART_POLICIES)}")
    containers = pod.get("containers") or []
    if not containers:
        problems.append(f"{where}: no containers")
    names = {c.get("name") for c in containers}
    rules = (spec.get("podFailurePolicy") or {}).get("rules") or []
    if rules and restart != "Never":
        problems.append(f"{where}: podFailurePolicy needs restartPolicy Never")
    for k, rule in enumerate(rules):
        if rule.get("action") not in FAILURE_ACTIONS:
            problems.append(f"{where}: podFailurePolicy rule {k}: action {rule.get('action')!r} is not one of {sorted(FAILURE_ACTIONS)}")
        codes = rule.get("onExitCodes")
        if codes:
            if codes.get("operator") not in EXIT_CODE_OPERATORS:
                problems.append(f"{where}: podFailurePolicy rule {k}: operator {codes.get('operator')!r} is not In or NotIn")
            if codes.get("containerName") not in (None, *names):
                problems.append(f"{where}: podFailurePolicy rule {k}: no container {codes.get('containerName')!r}")
            if codes.get("operator") == "In" and 0 in (codes.get("values") or []):
                problems.append(f"{where}: podFailurePolicy rule {k}: exit code 0 cannot be In")
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    for v in volumes.values():
        claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if claim is not None and claim not in claims:
            problems.append(f"{where}: volume {v.get('name')!r} uses claim {claim!r}, which is not among the rendered claims {sorted(claims)}")
        cm = (v.get("configMap") or {}).get("name")
        if cm is not None and cm not in configmaps:
            problems.append(f"{where}: volume {v.get('name')!r} uses ConfigMap {cm!r}, which is not rendered")
    for c in containers:
        cw = f"{where} container {c.get('name')!r}"
        if not str(c.get("image") or "").strip():
            problems.append(f"{cw}: no image")
        if c.get("imagePullPolicy", "IfNotPresent") not in PULL_POLICIES:
            problems.append(f"{cw}: imagePullPolicy {c.get('imagePullPolicy')!r} is not one of {sorted(PULL_POLICIES)}")
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                problems.append(f"{cw}: mounts {m.get('name')!r}, which is not a volume of the pod")
        mounted = {m.get("mountPath") for m in c.get("volumeMounts") or []}
        if (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            # riptide sweep --jobs N writes each child's output under the temp dir, and the
            # scripts write in the working directory.
            for path in ("/tmp", c.get("workingDir")):
                if path and path not in mounted:
                    problems.append(f"{cw}: the root filesystem is read-only and {path} is not a mounted volume")
        for e in c.get("envFrom") or []:
            cm = (e.get("configMapRef") or {}).get("name")
            if cm is not None and cm not in configmaps:
                problems.append(f"{cw}: envFrom ConfigMap {cm!r} is not rendered")


def riptide_rules(jobs, configmaps, claims, scripts_dir, problems):
    """The sweep's own consistency: one claim shared at OUT_DIR, completions = SHARDS, the scripts."""
    params_name = generated(configmaps, PARAMS)
    scripts_name = generated(configmaps, SCRIPTS)
    if params_name is None or scripts_name is None:
        problems.append(f"expected one ConfigMap {PARAMS}(-hash) and one {SCRIPTS}(-hash), found {sorted(configmaps)}")
        return
    params = configmaps[params_name].get("data") or {}
    for key, ok, what in (
        ("SCENARIO", lambda v: bool(re.fullmatch(r"[a-z0-9][a-z0-9-]*", v)), "a scenario name"),
        ("SEEDS", SEEDS.match, "A..=B or A..B"),
        ("SHARDS", POSITIVE.match, "a positive whole number"),
        ("PARALLELISM", POSITIVE.match, "a positive whole number"),
        ("JOBS", POSITIVE.match, "a positive whole number"),
        ("BACKEND", lambda v: v in BACKENDS, f"one of {sorted(BACKENDS)}"),
        ("BUG", lambda v: bool(re.fullmatch(r"[a-z0-9-]*", v)), "empty or a planted bug's name"),
        ("NO_COVERAGE", lambda v: bool(re.fullmatch(r"[a-z0-9]*", v)), "empty or a word like 1"),
    ):
        if not ok(str(params.get(key, ""))):
            problems.append(f"configmap/{params_name}: {key}={params.get(key)!r} is not {what}")
    if CLAIM not in claims:
        problems.append(f"no PersistentVolumeClaim {CLAIM}")
    else:
        modes = (claims[CLAIM].get("spec") or {}).get("accessModes") or []
        if not modes or not set(modes) <= ACCESS_MODES:
            problems.append(f"persistentvolumeclaim/{CLAIM}: accessModes {modes!r} must be some of {sorted(ACCESS_MODES)}")
    for name, script in ((SWEEP_JOB, "shard.sh"), (MERGE_JOB, "merge.sh")):
        job = jobs.get(name)
        if job is None:
            problems.append(f"no Job {name}")
            continue
        where = f"job/{name}"
        spec = job.get("spec") or {}
        pod = (spec.get("template") or {}).get("spec") or {}
        containers = pod.get("containers") or []
        if len(containers) != 1:
            problems.append(f"{where}: expected one container, found {len(containers)}")
            continue
        c = containers[0]
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        mounts = {m.get("mountPath"): m.get("name") for m in c.get("volumeMounts") or []}
        env = {e.get("name"): e.get("value") for e in c.get("env") or []}
        # The command must run the script from the scripts ConfigMap's mount.
        command = " ".join(str(x) for x in (c.get("command") or []) + (c.get("args") or []))
        m = re.search(r"(\S*)/" + re.escape(script) + r"\b", command)
        if not m:
            problems.append(f"{where}: the command {command!r} does not run {script}")
        else:
            vol = volumes.get(mounts.get(m.group(1)), {})
            if (vol.get("configMap") or {}).get("name") != scripts_name:
                problems.append(f"{where}: {m.group(1)!r} is not the mount of ConfigMap {scripts_name}")
        if not any((e.get("configMapRef") or {}).get("name") == params_name for e in c.get("envFrom") or []):
            problems.append(f"{where}: the container does not take its environment from ConfigMap {params_name}")
        out_dir = env.get("OUT_DIR", "/shards")
        claim_vol = volumes.get(mounts.get(out_dir), {})
        if (claim_vol.get("persistentVolumeClaim") or {}).get("claimName") != CLAIM:
            problems.append(f"{where}: OUT_DIR {out_dir!r} is not the mount of claim {CLAIM}")
        if name == SWEEP_JOB:
            if spec.get("completionMode") != "Indexed":
                problems.append(f"{where}: completionMode must be Indexed (each pod one shard, by JOB_COMPLETION_INDEX), not {spec.get('completionMode')!r}")
            if str(spec.get("completions")) != str(params.get("SHARDS")):
                problems.append(f"{where}: completions {spec.get('completions')!r} differs from SHARDS={params.get('SHARDS')!r}: shards would be missing or refused")
            p = spec.get("parallelism")
            if not isinstance(p, int) or not isinstance(spec.get("completions"), int) or not 1 <= p <= spec["completions"]:
                problems.append(f"{where}: parallelism {p!r} must be from 1 to completions")
            cpu = ((c.get("resources") or {}).get("requests") or {}).get("cpu")
            if str(cpu) != str(params.get("JOBS")):
                problems.append(f"{where}: CPU request {cpu!r} differs from JOBS={params.get('JOBS')!r}")
        else:
            if spec.get("suspend") is not True:
                problems.append(f"{where}: must be created suspended (suspend: true), or it merges before the shards exist")
    if scripts_dir is not None:
        data = configmaps[scripts_name].get("data") or {}
        for script in ("shard.sh", "merge.sh"):
            want = Path(scripts_dir, script).read_text(encoding="utf-8")
            if data.get(script) != want:
                problems.append(f"configmap/{scripts_name}: {script} is not {Path(scripts_dir, script)}")


def lint(path, scripts_dir=None):
    docs = load(path)
    problems = []
    for d in docs:
        if not isinstance(d, dict) or not d.get("kind") or not (d.get("metadata") or {}).get("name"):
            problems.append(f"a document without kind or metadata.name: {str(d)[:80]!r}")
    configmaps = by_kind(docs, "ConfigMap")
    claims = by_kind(docs, "PersistentVolumeClaim")
    jobs = by_kind(docs, "Job")
    for name, job in jobs.items():
        lint_job(name, job, configmaps, claims, problems)
    riptide_rules(jobs, configmaps, claims, scripts_dir, problems)
    return problems


def main(argv):
    if len(argv) == 2 and argv[0] == "--env":
        cms = by_kind(load(argv[1]), "ConfigMap")
        name = generated(cms, PARAMS)
        if name is None:
            print(f"lint.py: no ConfigMap {PARAMS} in {argv[1]}", file=sys.stderr)
            return 1
        for k, v in sorted((cms[name].get("data") or {}).items()):
            print(f"{k}={v}")
        return 0
    if len(argv) in (1, 3) and not argv[0].startswith("-") and (len(argv) == 1 or argv[1] == "--scripts"):
        problems = lint(argv[0], argv[2] if len(argv) == 3 else None)
        for p in problems:
            print(f"LINT {argv[0]}: {p}")
        return 1 if problems else 0
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
