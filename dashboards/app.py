"""Entry point for the CCG/ICB lead dashboards: `streamlit run dashboards/app.py`
(`slotsync dashboard --data-dir DIR` does this).

Pages are plain functions registered with `st.navigation`; adding one is a module in
`dashboards/views/` plus one entry in `pages()`. Every page reads only the published marts
snapshot (`dashboards.data`). The shared filters are drawn here, before the page runs, so
they keep their values from page to page.
"""

from __future__ import annotations

import streamlit as st

from dashboards import auth, ui
from dashboards.views import health, nhs111, overview, releases, utilisation


def pages() -> list[st.Page]:
    return [
        st.Page(
            overview.render,
            title=overview.TITLE,
            url_path="overview",
            icon=":material/dashboard:",
            default=True,
        ),
        st.Page(nhs111.render, title=nhs111.TITLE, url_path="nhs111", icon=":material/call:"),
        st.Page(
            utilisation.render,
            title=utilisation.TITLE,
            url_path="utilisation",
            icon=":material/event_available:",
        ),
        st.Page(releases.render, title=releases.TITLE, url_path="releases", icon=":material/lock_open:"),
        st.Page(health.render, title=health.TITLE, url_path="data-health", icon=":material/monitor_heart:"),
    ]


def main() -> None:
    st.set_page_config(page_title="slotsync", page_icon=":material/event_available:", layout="wide")
    auth.gate()  # signed out or not allowed: stops here, no page and no data
    page = st.navigation(pages())
    ui.shell()
    page.run()


if __name__ == "__main__":
    main()
