"""`distdl report`: one self-contained HTML file of plots about a run (opens offline).

:mod:`distdl.report.data` gathers what the output folder holds (the metrics series rank 0
keeps under logs_folder, the status, error codes, image sizes); :mod:`distdl.report.html`
draws it with plotly, its JavaScript embedded, so the file needs no network to open.
"""
