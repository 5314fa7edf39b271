"""Running a function of the admin page's JavaScript in Node, on data from a test.

The page's modules (services/admin_api/web/static/js) are ES modules with no browser API at
import, so Node imports them as they are served: `in_node("presentation.js", "...")`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from admin_api.web.pages import STATIC_DIR


def in_node(module: str, expression: str, data: Any) -> Any:
    """`expression` evaluated in Node with `page` the imported module (static/js/`module`) and
    `data` the JSON given; its value back from JSON."""
    node = shutil.which("node")
    if node is None:
        raise AssertionError("node is missing: deploy/install.sh installs it (Debian nodejs)")
    script = f"""
        import {{ readFileSync }} from "node:fs";
        const page = await import({json.dumps((STATIC_DIR / "js" / module).as_uri())});
        const data = JSON.parse(readFileSync(0, "utf8"));
        console.log(JSON.stringify({expression}));
    """
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
