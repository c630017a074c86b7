# Regenerates README.md's settings table from SETTINGS in src/config.rs:
#   python3 scripts/settings-table.py
# The table sits between the settings:start and settings:end markers.
import re
from pathlib import Path

root = Path(__file__).resolve().parent.parent
src = (root / "src/config.rs").read_text()
rows = re.findall(
    r'Setting \{\s*key: "([^"]+)",\s*env: "([^"]+)",\s*default: (?:None|Some\("([^"]*)"\)),\s*help: "((?:[^"\\]|\\.)*)",?\s*\}',
    src,
)
table = ["| variable | `callproof.toml` key | default | what it does |", "|---|---|---|---|"]
for key, env, default, help_text in rows:
    shown = f"`{default}`" if default else "unset"
    table.append(f"| `{env}` | `{key}` | {shown} | {help_text} |")
readme = root / "README.md"
text = readme.read_text()
start, end = "<!-- settings:start -->", "<!-- settings:end -->"
before, rest = text.split(start, 1)
_, after = rest.split(end, 1)
readme.write_text(before + start + "\n" + "\n".join(table) + "\n" + end + after)
print(f"{len(rows)} settings written to README.md")
