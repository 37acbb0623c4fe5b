"""Structural checks of docker-compose.yml that need no container engine.

    check_compose.py COMPOSE_FILE   -> JSON {"services": {...}, "problems": [...]}

Each service must have a pinned image (a tag that is not `latest`) or a build; a healthcheck unless its
image cannot run one (listed below); dependencies on a service that has a healthcheck must wait for it.
"""
import json
import sys

import yaml

# Images with no shell or HTTP client inside, or one-shot jobs: no healthcheck possible or meaningful.
NO_HEALTHCHECK = {"kafka-exporter": "scratch image", "minio-init": "one-shot job"}


def main(argv):
    with open(argv[1], encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    services = compose.get("services", {})
    problems = []
    summary = {}
    for name, svc in services.items():
        image = svc.get("image", "")
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        if "build" not in svc and (not tag or tag == "latest"):
            problems.append(f"{name}: image {image!r} is not pinned to a version")
        if "healthcheck" not in svc and name not in NO_HEALTHCHECK:
            problems.append(f"{name}: no healthcheck")
        for dep, cond in (svc.get("depends_on") or {}).items():
            # One-shot jobs must have finished; everything else must be healthy.
            want = "service_completed_successfully" if dep == "minio-init" else "service_healthy"
            got = cond.get("condition") if isinstance(cond, dict) else None
            if got != want:
                problems.append(f"{name}: depends_on {dep} with condition {got}, expected {want}")
        # "HOST:CONTAINER" or "IP:HOST:CONTAINER" -> HOST ("" when Docker picks a free one).
        ports = [str(p).split(":")[-2] for p in svc.get("ports", [])]
        summary[name] = {"image": image, "build": "build" in svc, "ports": ports,
                         "healthcheck": "healthcheck" in svc}
    print(json.dumps({"services": summary, "problems": problems}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
