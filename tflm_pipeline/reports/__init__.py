"""Run record -> readable reports: a run's ``report.md``/``report.html``
(``run_report``), two runs side by side (``compare``), the figures (``plots``) and the
document model both are laid out with (``document``, ``templates/``)."""
