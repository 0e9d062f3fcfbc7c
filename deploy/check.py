#!/usr/bin/env python3
"""Checks the deployment recipes beyond what their linters know (run by the test suite with the
project's .venv: PyYAML, kubernetes-validate). Each command exits 1 with one line per problem.

    check.py dockerfile FILE [CONTEXT]   stages, slim runtime with fuse3, COPY sources present
                                         (CONTEXT: the build context, default the repository)
    check.py kubernetes FILE...          strict schema validation (Kubernetes MIN_K8S and newest)
    check.py pod-template FILE           + the mount-before-Spark rules of check_pod_template
    check.py sidecar-env TEMPLATE KEY-SOURCES CONTAINER
                                         the container's environment (template env, then the
                                         ConfigMaps it names from KEY-SOURCES) as export lines
    check.py session FILE                a rendered SCONE CAS session; prints each service as a
                                         command line with its environment
    check.py inprocess-template FILE     + the rules of a pod reading volumes in-process (fspf://):
                                         no FUSE, nothing privileged, the volume read-only
    check.py gramine FRAGMENT            the Gramine manifest fragment: TOML, libfspf trusted, volumes allowed
    check.py occlum BOM JSON             the Occlum bom.yaml and Occlum.json fragments
    check.py spark-load TEMPLATE         Spark's own pod-template loader keeps the sidecars
Options: --root DIR prefixes the absolute paths printed (a container's root laid out in DIR).
"""
import json
import os
import re
import shlex
import sys

import kubernetes_validate
import yaml

MIN_K8S = "1.29.0"  # native sidecars (restartPolicy Always on init containers) are on by default from 1.29
HEX = {"key": re.compile(r"^[0-9a-f]{64}$"), "tag": re.compile(r"^[0-9a-f]{32}$")}
problems = []


def problem(text):
    problems.append(text)


def documents(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def stages_of(path):
    """{stage: {"from": image, "lines": [(INSTRUCTION, arguments)]}}, continuation lines joined."""
    with open(path) as f:
        text = re.sub(r"\\\n", " ", f.read())
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    stages, current = {}, None
    for line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.match(r"(\S+)\s+AS\s+(\S+)", rest, re.I)
            if not m:
                problem(f"{path}: FROM without a stage name: {line}")
                continue
            current = m.group(2)
            stages[current] = {"from": m.group(1), "lines": []}
        elif current:
            stages[current]["lines"].append((word, rest))
    return stages


def check_dockerfile(path, context=None):
    root = context or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(path))))
    stages = stages_of(path)
    for name in ("build", "runtime"):
        if name not in stages:
            problem(f"{path}: no '{name}' stage")
    if problems:
        return
    build = " ".join(r for w, r in stages["build"]["lines"] if w == "RUN")
    for product in ("fspf", "fspf-mount"):
        if f"--product {product}" not in build:
            problem(f"{path}: the build stage does not build {product}")
    if "--static-swift-stdlib" not in build:
        problem(f"{path}: the build stage links the Swift runtime dynamically (the runtime image has none)")
    runtime = stages["runtime"]
    if "slim" not in runtime["from"] and "RUNTIME_IMAGE" not in runtime["from"]:
        problem(f"{path}: the runtime stage is not a slim image: {runtime['from']}")
    installs = " ".join(r for w, r in runtime["lines"] if w == "RUN")
    for package in ("fuse3", "libssl3", "libsodium23"):
        if not re.search(rf"\b{package}\b", installs):
            problem(f"{path}: the runtime stage does not install {package}")
    if re.search(r"\b(swift|-dev)\b", installs):
        problem(f"{path}: the runtime stage installs build tools: {installs}")
    if not any(w == "COPY" and "--from=build" in r for w, r in runtime["lines"]):
        problem(f"{path}: the runtime stage does not copy the tools from the build stage")
    # Every COPY from the build context must exist and pass the Dockerfile's .dockerignore.
    ignore = path + ".dockerignore"
    allowed = []
    if os.path.exists(ignore):
        with open(ignore) as f:
            allowed = [l.strip()[1:] for l in f if l.strip().startswith("!")]
    for stage in stages.values():
        for word, rest in stage["lines"]:
            if word not in ("COPY", "ADD") or "--from=" in rest:
                continue
            for source in shlex.split(rest)[:-1]:
                if source.startswith("--"):
                    continue
                if not os.path.exists(os.path.join(root, source)):
                    problem(f"{path}: COPY {source}: not in the repository")
                if allowed and not any(source == a or source.startswith(a + "/") for a in allowed):
                    problem(f"{path}: COPY {source}: excluded by {os.path.basename(ignore)}")


def check_kubernetes(paths):
    for path in paths:
        for doc in documents(path):
            for version in (MIN_K8S, kubernetes_validate.latest_version()):
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    where = "/".join(str(p) for p in e.path)
                    problem(f"{path}: Kubernetes {version}: {where}: {e.message}")
                except kubernetes_validate.SchemaNotFoundError as e:
                    problem(f"{path}: {e}")


def check_pod_template(path):
    check_kubernetes([path])
    pod = documents(path)[0]
    spec = pod.get("spec", {})
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    sidecars = [c for c in spec.get("initContainers", []) if c["name"].startswith("fspf-")]
    spark = spec.get("containers", [{}])[0]
    if not sidecars:
        problem(f"{path}: no fspf-* init containers")
    shared = set()
    for c in sidecars:
        name = f"{path}: {c['name']}"
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        if c.get("restartPolicy") != "Always":
            problem(f"{name}: not a native sidecar (restartPolicy Always): Spark would start before the mount, or the mount end with the init phase")
        probe = c.get("startupProbe", {}).get("exec", {}).get("command", [])
        if probe[:2] != ["fspf-sidecar", "probe"]:
            problem(f"{name}: no startup probe on the mount, so Spark may start before it answers")
        if not c.get("securityContext", {}).get("privileged"):
            problem(f"{name}: not privileged: no /dev/fuse, no CAP_SYS_ADMIN, no Bidirectional propagation")
        for key in ("FSPF_VOLUME", "FSPF_MOUNTPOINT"):
            if not env.get(key):
                problem(f"{name}: {key} not set")
        mounts = c.get("volumeMounts", [])
        bidirectional = [m for m in mounts if m.get("mountPropagation") == "Bidirectional"]
        point = env.get("FSPF_MOUNTPOINT") or ""
        carrying = [m for m in bidirectional if point.startswith(m["mountPath"].rstrip("/") + "/")]
        if not carrying:
            problem(f"{name}: FSPF_MOUNTPOINT {point} is not below a Bidirectional volume mount")
        for m in carrying:
            if "emptyDir" not in volumes.get(m["name"], {}):
                problem(f"{name}: the shared volume {m['name']} is not an emptyDir of the pod")
            shared.add((m["name"], m["mountPath"]))
        if not c.get("envFrom"):
            problem(f"{name}: no key source (envFrom a ConfigMap)")
        for m in mounts:
            if m["name"] not in volumes:
                problem(f"{name}: volume {m['name']} is not defined")
    seen = {(m["name"], m["mountPath"]): m for m in spark.get("volumeMounts", [])}
    for volume, mount_path in shared:
        m = seen.get((volume, mount_path))
        if not m:
            problem(f"{path}: Spark's container does not mount {volume} at {mount_path}")
        elif m.get("mountPropagation") != "HostToContainer":
            problem(f"{path}: Spark's container mounts {volume} without HostToContainer: it would see an empty directory")
        elif not m.get("readOnly"):
            problem(f"{path}: Spark's container mounts {volume} writable")


def check_inprocess_template(path):
    """A pod whose JVMs read volumes through fspf:// needs none of what mounting needs."""
    check_kubernetes([path])
    spec = documents(path)[0].get("spec", {})
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for v in volumes.values():
        if "/dev/fuse" in json.dumps(v.get("hostPath", {})):
            problem(f"{path}: volume {v['name']} brings /dev/fuse into the pod")
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        name = f"{path}: {c['name']}"
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            problem(f"{name}: privileged, which reading in-process never needs")
        if sc.get("allowPrivilegeEscalation", True):
            problem(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("capabilities", {}).get("add"):
            problem(f"{name}: adds capabilities {sc['capabilities']['add']}")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problem(f"{name}: does not drop all capabilities")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                problem(f"{name}: volume {m['name']} is not defined")
            if m.get("mountPropagation") not in (None, "None"):
                problem(f"{name}: mount propagation on {m['mountPath']}: nothing is mounted in-process")
            if m["mountPath"].startswith("/fspf-volumes/") and not m.get("readOnly"):
                problem(f"{name}: the volume at {m['mountPath']} is mounted writable")
        if not any(m["mountPath"].startswith("/fspf-volumes/") for m in c.get("volumeMounts", [])):
            problem(f"{name}: mounts no volume under /fspf-volumes (the ciphertext spark.hadoop.fs.fspf.volume names)")


def check_gramine(path):
    """libfspf and what it links measured; the volumes outside the measurement (allowed files)."""
    import tomllib
    try:
        with open(path, "rb") as f:
            manifest = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        problem(f"{path}: not TOML: {e}")
        return
    trusted = manifest.get("sgx", {}).get("trusted_files", [])
    allowed = manifest.get("sgx", {}).get("allowed_files", [])
    for needed in ("file:/opt/fspf/lib/", "libcrypto.so.3", "libsodium.so.23"):
        if not any(needed in t for t in trusted):
            problem(f"{path}: {needed} is not a trusted file: the enclave would load an unmeasured library")
    if any(t.startswith("file:/fspf-volumes") for t in trusted) or "file:/fspf-volumes/" not in allowed:
        problem(f"{path}: the volumes must be allowed files (verified by libfspf), not trusted ones")
    env = manifest.get("loader", {}).get("env", {})
    if not str(env.get("FSPF_LIBRARY", "")).startswith("/opt/fspf/lib/"):
        problem(f"{path}: FSPF_LIBRARY does not point into /opt/fspf/lib")
    if manifest.get("sgx", {}).get("remote_attestation") != "dcap":
        problem(f"{path}: no DCAP remote attestation: evidence=sgx needs /dev/attestation")


def check_occlum(bom, config):
    copied = json.dumps(documents(bom))
    for needed in ("/opt/fspf/lib", "libcrypto.so.3", "libsodium.so.23"):
        if needed not in copied:
            problem(f"{bom}: {needed} is not copied into the image")
    with open(config) as f:
        try:
            occlum = json.load(f)
        except json.JSONDecodeError as e:
            problem(f"{config}: not JSON: {e}")
            return
    env = occlum.get("env", {}).get("default", [])
    if "FSPF_LIBRARY=/opt/fspf/lib/libfspf.so" not in env:
        problem(f"{config}: FSPF_LIBRARY is not set to the image's libfspf")
    if not any(m.get("target") == "/fspf-volumes" and m.get("type") == "hostfs" for m in occlum.get("mount", [])):
        problem(f"{config}: the volumes are not mounted from the host (hostfs)")


def sidecar_env(template, key_sources, container):
    pod = documents(template)[0]
    c = next(c for c in pod["spec"]["initContainers"] if c["name"] == container)
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in documents(key_sources) if d.get("kind") == "ConfigMap"}
    env = {e["name"]: e["value"] for e in c.get("env", [])}
    for ref in c.get("envFrom", []):
        name = ref["configMapRef"]["name"]
        if name not in maps:
            problem(f"{key_sources}: no ConfigMap {name} for {container}")
            continue
        env.update(maps[name])
    return env


def check_session(path):
    session = documents(path)[0]
    for field in ("name", "version", "services"):
        if field not in session:
            problem(f"{path}: no {field}")
    images = {i["name"] for i in session.get("images", [])}
    out = []
    for s in session.get("services", []):
        name = f"{path}: service {s.get('name')}"
        for field in ("name", "image_name", "mrenclaves", "command", "environment"):
            if field not in s:
                problem(f"{name}: no {field}")
        if s.get("image_name") not in images:
            problem(f"{name}: image {s.get('image_name')} is not in images")
        for m in s.get("mrenclaves", []):
            if not re.fullmatch(r"[0-9a-f]{64}", str(m)):
                problem(f"{name}: MRENCLAVE {m!r} is not 64 hex digits")
        argv = shlex.split(s.get("command", ""))
        env = {k: str(v) for k, v in s.get("environment", {}).items()}
        for option, kind in (("--key-env", "key"), ("--tag-env", "tag")):
            if option not in argv:
                problem(f"{name}: the command has no {option}")
                continue
            var = argv[argv.index(option) + 1]
            if not HEX[kind].match(env.get(var, "")):
                problem(f"{name}: {option} {var}: the environment holds no {kind} there ({env.get(var)!r})")
        if "$" in json.dumps(s):
            problem(f"{name}: unrendered variable left")
        out.append({"name": s.get("name"), "argv": argv, "environment": env})
    return out


def rebase(value, root):
    return root + value if root and value.startswith("/") else value


def check_spark_load(path):
    """Spark's driver and executor pod builders read a template with its Kubernetes client model
    (KubernetesUtils.loadPodFromTemplate); fields that model does not know would be dropped."""
    from py4j.protocol import Py4JJavaError
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        jvm = spark.sparkContext._jvm
        client = jvm.io.fabric8.kubernetes.client.KubernetesClientBuilder().build()
        pod = jvm.org.apache.spark.deploy.k8s.KubernetesUtils.loadPodFromTemplate(
            client, os.path.abspath(path), jvm.scala.Option.apply(None), spark.sparkContext._jsc.sc().conf())
        loaded = yaml.safe_load(jvm.io.fabric8.kubernetes.client.utils.Serialization.asYaml(pod.pod()))
        container = yaml.safe_load(jvm.io.fabric8.kubernetes.client.utils.Serialization.asYaml(pod.container()))
    except Py4JJavaError as e:
        problem(f"{path}: Spark cannot load it: {e.java_exception.toString()}")
        return
    finally:
        spark.stop()
    original = documents(path)[0]["spec"]
    for c in original.get("initContainers", []):
        got = next((x for x in loaded["spec"].get("initContainers", []) if x["name"] == c["name"]), None)
        if got is None:
            problem(f"{path}: Spark dropped the init container {c['name']}")
        elif got != c:
            problem(f"{path}: Spark changed {c['name']}: {json.dumps(got, sort_keys=True)}")
    if container.get("volumeMounts") != original["containers"][0]["volumeMounts"]:
        problem(f"{path}: Spark's container lost its mounts: {container.get('volumeMounts')}")
    if container.get("securityContext") != original["containers"][0].get("securityContext"):
        problem(f"{path}: Spark changed its container's security context: {container.get('securityContext')}")


def main():
    root = None
    if "--root" in sys.argv:
        i = sys.argv.index("--root")
        root = sys.argv[i + 1].rstrip("/")
        del sys.argv[i:i + 2]
    command, args = sys.argv[1], sys.argv[2:]
    result = None
    if command == "dockerfile":
        check_dockerfile(*args)
    elif command == "kubernetes":
        check_kubernetes(args)
    elif command == "pod-template":
        check_pod_template(args[0])
    elif command == "sidecar-env":
        env = sidecar_env(*args)
        result = "".join(f"export {k}={shlex.quote(rebase(v, root))}\n" for k, v in env.items())
    elif command == "session":
        result = "".join(" ".join(["env"] + [shlex.quote(f"{k}={v}") for k, v in s["environment"].items()]
                                  + [shlex.quote(rebase(a, root)) for a in s["argv"]]) + "\n"
                         for s in check_session(args[0]))
    elif command == "inprocess-template":
        check_inprocess_template(args[0])
    elif command == "gramine":
        check_gramine(args[0])
    elif command == "occlum":
        check_occlum(args[0], args[1])
    elif command == "spark-load":
        check_spark_load(args[0])
    else:
        sys.exit(f"check.py: unknown command {command}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        sys.exit(1)
    if result is not None:
        sys.stdout.write(result)
    else:
        print(f"{command}: ok")


if __name__ == "__main__":
    main()
