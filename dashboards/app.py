"""Entry point for the CCG/ICB lead dashboards: `streamlit run dashboards/app.py`.

Pages are plain functions registered with `st.navigation`, so adding one (Overview,
Utilisation, Releases, Data health) is a module in `dashboards/views/` plus one entry in
`pages()`. Every page reads only the published marts snapshot (`dashboards.data`).
"""

from __future__ import annotations

import streamlit as st

from dashboards.views import nhs111


def pages() -> list[st.Page]:
    return [
        st.Page(nhs111.render, title=nhs111.TITLE, url_path="nhs111", icon=":material/call:", default=True),
    ]


def main() -> None:
    st.set_page_config(page_title="slotsync", page_icon=":material/event_available:", layout="wide")
    st.navigation(pages()).run()


if __name__ == "__main__":
    main()
