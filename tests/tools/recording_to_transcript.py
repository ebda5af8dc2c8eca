#!/usr/bin/env python3
"""Turn a TRANSCRIPT_RECORD=1 recording (stdin) into a transcript draft (stdout).

Keeps the `#` header lines of the original transcript (argv[1]); SELECT/EXAMINE untagged data
becomes an unordered group (RFC 9051 does not fix its order), [CLOSED] and a `* 0 RECENT` outside
SELECT become optional, and UIDVALIDITY values of folders created during the test become \\d+.
The draft must still be reviewed line by line against the RFC.
"""
import re
import sys

header = [l.rstrip("\n") for l in open(sys.argv[1]) if l.startswith("#")]
out = list(header)
in_select = None
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line or line.startswith(("transcripts:", "# record", "note:", "failures", "error:", "thread ", "    ")):
        continue
    m = re.match(r"^C(\d*): (\S+) (UID )?(SELECT|EXAMINE)\b", line)
    if m:
        in_select = m.group(2)
        out.append(line)
        continue
    if line.startswith("C") or line.startswith("LOGIN") or line.startswith("EOF"):
        in_select = None
        out.append(line)
        continue
    # Values chosen by the server for folders created during the test.
    line = re.sub(r"(UIDVALIDITY|APPENDUID|COPYUID) (?!170000000[01]\b)\d+", r"\1 \\d+", line)
    line = re.sub(r" OK \\\[CAPABILITY [^\]]*\\\]", " OK", line)
    m = re.match(r"^S(\d*)([:~]) (.*)$", line)
    if m and in_select and not m.group(3).startswith(in_select + " "):
        kind = "U" + m.group(1)
        if "CLOSED" in line:
            kind += "?"
        line = f"{kind}{m.group(2)} {m.group(3)}"
    elif m and re.match(r"^\* 0 RECENT$", m.group(3)):
        line = f"S{m.group(1)}?{m.group(2)} {m.group(3)}"
    out.append(line)
print("\n".join(out))
