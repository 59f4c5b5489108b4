"""Entry point for the ICB and sub-ICB lead dashboards: `streamlit run dashboards/app.py`
(`slotsync dashboard --data-dir DIR` does this).

Pages are plain functions registered with `st.navigation`; adding one is a module in
`dashboards/views/` (with its `page()`) plus one entry in `pages()`. Every page reads only the published marts
snapshot (`dashboards.data`). The shared filters are drawn here, before the page runs, so
they keep their values from page to page.
"""

from __future__ import annotations

import streamlit as st

from dashboards import auth, ui
from dashboards.views import health, nhs111, overview, releases, utilisation


def pages() -> list[st.Page]:
    """The dashboard's pages in menu order; each view declares its own title, URL and icon."""
    return [view.page() for view in (overview, nhs111, utilisation, releases, health)]


def main() -> None:
    st.set_page_config(page_title="slotsync", page_icon=":material/event_available:", layout="wide")
    auth.gate()  # signed out or not allowed: stops here, no page and no data
    page = st.navigation(pages())
    ui.shell()
    page.run()


if __name__ == "__main__":
    main()
