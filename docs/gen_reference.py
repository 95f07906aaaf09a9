"""Run by mkdocs-gen-files while the site builds: the reference pages generated from the code
(harness.commands.reference), so they never drift from the parsers, the catalogue and the checks."""

import mkdocs_gen_files

from harness.commands.reference import reference_pages

for path, markdown in reference_pages().items():
    with mkdocs_gen_files.open(path, "w") as page:
        page.write(markdown)
