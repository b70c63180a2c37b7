"""The app shell and Home (AppTest): every registered page renders on defaults, the shared sidebar is drawn once per
run with its default source and tensor, Home lists every registry format, presenter mode renders."""
import pytest

from app_helpers import APP_PATH, assert_no_exception, new_app, open_page, query, warnings
from explorer import format_names
from ui import navigation


PAGES = navigation.PAGES  # (file, title, url_path, icon)


@pytest.fixture(scope="module")
def home():
    at = new_app()
    at.run()
    return at


def test_pages_table_is_well_formed():
    files = [p[0] for p in PAGES]
    assert PAGES[0][0] == "pages/home.py"  # the default page lives at "/"
    assert len(set(files)) == len(files) and len({p[2] for p in PAGES}) == len(PAGES)
    for f, title, url, icon in PAGES:
        assert (APP_PATH.parent / f).is_file(), f
        assert title and url.isidentifier() and icon.startswith(":material/")


def test_home_renders_on_defaults(home):
    assert_no_exception(home)
    assert home.title[0].value == "What does quantization do to a real model?"
    assert not warnings(home)
    assert [s.value for s in home.subheader] == ["The pages", "Formats in the registry", "Your own model"]


def test_home_lists_every_format_of_the_registry(home):
    (table,) = home.dataframe
    assert list(table.value["format"]) == format_names()


def test_sidebar_defaults_to_the_minilm_sample_and_its_outlier_layer(home):
    assert home.sidebar.selectbox(key="w_src").value == "sample:minilm"
    assert home.sidebar.selectbox(key="w_t").value == "encoder.layer.0.output.dense.weight"
    assert home.sidebar.radio(key="w_dev").value == "auto"
    assert home.sidebar.toggle(key="w_present").value is False
    assert query(home) == {"t": "encoder.layer.0.output.dense.weight"}


# (not named `page`: that is pytest-playwright's fixture, which would parametrize the test by browser)
@pytest.mark.parametrize("page_file", [p[0] for p in PAGES], ids=[p[2] for p in PAGES])
def test_every_registered_page_renders_on_defaults(home, page_file):
    at = open_page(page_file, at=home)
    assert_no_exception(at)
    assert at.title, f"{page_file} drew no title"
    assert len(at.sidebar.selectbox) >= 2, f"{page_file}: the shared sidebar is missing"


def test_home_in_presenter_mode():
    at = open_page(None, {"present": "1"})  # a presenter link to Home as a fresh session's first page
    assert_no_exception(at)
    assert at.sidebar.toggle(key="w_present").value is True
    assert any("font-size: 22px" in m.value for m in at.markdown)  # the presenter stylesheet
    assert query(at)["present"] == "1"
