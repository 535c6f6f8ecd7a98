"""report.html: one self-contained page per analyze or evaluate run, for a biologist to read.

Built from the tables the run wrote (read back generically, so a new column shows without a
template change) and its in-memory results; Jinja2 templates (package data) lay it out, and every
figure is inline, so the file opens anywhere without network, fonts or scripts.
"""
