"""Reports: run folders, JUnit XML, SVG charts and the self-contained HTML
report (its CSS and JS are files in ``assets/``, inlined at build time)."""
