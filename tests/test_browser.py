"""The notebooks in a real browser: JupyterLab on loopback, driven through Debian's Chromium.

Opens notebook 00 and notebook 02 (the one with the generation widget), clears the stored
outputs, runs every cell with JupyterLab's own "Run All" and checks what a learner sees:
no error or stderr output, the widget's controls, its output changing after a slider moves,
a matplotlib figure, and the claims table whole and wrapped. Screenshots go to
test-artifacts/browser/ (git-ignored).
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("LMGUIDE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("LMGUIDE_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
NOTEBOOKS = ["00_start_here.ipynb", "02_llm_generation.ipynb"]
# a hang guard per notebook, not a speed test: each runs in about a minute on a quiet 2-core machine
RUN_TIMEOUT_S = int(os.environ.get("LMGUIDE_BROWSER_TIMEOUT", "1500"))

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed (pip install -e '.[test]')")

# JupyterLab user settings for this run only: every cell stays in the page, no news or update
# pop-up, and no autosave (the browser runs copies of the notebooks, never the repository's).
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}
BROWSER_ARGS = ["--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--disable-default-apps", "--disable-sync",
                "--disable-extensions", "--no-first-run", "--metrics-recording-only",
                "--disable-features=Translate,OptimizationHints,MediaRouter"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KernelMemory:
    """Samples the server's kernels' resident memory twice a second; reports the peak (no assert)."""

    def __init__(self, server_pid):
        import threading

        self.peak_mb, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(server_pid,), daemon=True)
        self._thread.start()

    def _sample(self, server_pid):
        try:
            import psutil
        except ImportError:
            return
        server = psutil.Process(server_pid)
        while not self._stop.wait(0.5):
            try:
                for child in server.children(recursive=True):
                    self.peak_mb = max(self.peak_mb, child.memory_info().rss / 2**20)
            except psutil.Error:
                pass

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving copies of the notebooks; yields (url, token)."""
    base = tmp_path_factory.mktemp("lab")
    work, settings = base / "work", base / "settings"
    work.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, work / name)
    for rel, values in SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(values))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(base / "ws"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    port, token = free_port(), secrets.token_hex(16)
    log = open(base / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}",
         "--LabApp.expose_app_in_browser=True", "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (base / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        peak = KernelMemory(server.pid)
        yield url, token
        peak.stop()
        print(f"peak kernel RSS with JupyterLab running: {peak.peak_mb:.0f} MB (Binder budget: 1800 MB)")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, chromium_sandbox=False,
                              args=BROWSER_ARGS)
        yield b
        b.close()


# --- reading JupyterLab's state through its own application object ---------------------------
# Every query names its notebook by path: the current widget can be another one (a restored tab).
PANEL = "const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context?.path === name);"
KERNEL_IDLE = f"(name) => {{ {PANEL} return panel?.sessionContext?.session?.kernel?.status === 'idle'; }}"
CODE_CELLS = "panel.content.widgets.filter(c => c.model.type === 'code')"
STATE = f"""(name) => {{ {PANEL}
  return {CODE_CELLS}.map(c => ({{count: c.model.executionCount,
                                  source: c.model.sharedModel.getSource().slice(0, 120),
                                  outputs: c.model.outputs.toJSON()}}));
}}"""
RUN_FINISHED = f"""(name) => {{ {PANEL}
  const status = panel?.sessionContext?.session?.kernel?.status;
  if (status === 'dead') throw new Error('the kernel died (out of memory?)');
  const cells = {CODE_CELLS};
  const done = cells.every(c => c.model.executionCount !== null);
  const failed = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));
  return status === 'idle' && (done || failed);
}}"""


def run_all(page, url, token, name, timeout=RUN_TIMEOUT_S):
    """Open a notebook, clear its stored outputs, Run All, and return the code cells' state."""
    # a workspace of its own, reset: JupyterLab would otherwise reopen the tabs of the notebook
    # tested before (starting its kernel too) and the page's current widget could be either one
    workspace = Path(name).stem.replace("_", "-")
    page.goto(f"{url}/lab/workspaces/{workspace}/tree/{name}?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function(KERNEL_IDLE, arg=name, timeout=120_000)
    # forget the committed outputs and execution counts, so everything checked below is from this run
    page.evaluate(f"""async (name) => {{ {PANEL}
      window.jupyterapp.shell.activateById(panel.id);
      await window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs');
      {CODE_CELLS}.forEach(c => {{ c.model.executionCount = null; }});
    }}""", name)
    # start Run All without awaiting it (the command's promise resolves only when every cell is done)
    page.evaluate("() => { window.jupyterapp.commands.execute('runmenu:run-all'); }")
    started = time.monotonic()
    page.wait_for_function(RUN_FINISHED, arg=name, timeout=timeout * 1000, polling=1000)
    print(f"{name}: Run All took {time.monotonic() - started:.0f} s in the browser")
    return page.evaluate(STATE, name)


def assert_clean(cells, name):
    assert cells and all(c["count"] is not None for c in cells), \
        f"{name}: not every cell ran: {[c['source'] for c in cells if c['count'] is None][:3]}"
    for c in cells:
        bad = [o for o in c["outputs"] if o["output_type"] == "error" or o.get("name") == "stderr"]
        assert not bad, f"{name}: cell {c['source']!r} wrote {bad[0].get('ename') or 'to stderr'}: " \
                        f"{(bad[0].get('evalue') or ''.join(bad[0].get('text', '')))[:500]}"


def shoot(page, locator, filename):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / filename))


@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1400, "height": 2400})
    page = context.new_page()
    yield page
    context.close()
    url, token = lab  # shut this test's kernel down: two notebooks' models need not share the RAM
    for kernel in json.load(urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=10)):
        request = urllib.request.Request(f"{url}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).read()


def test_start_here_runs_clean_in_the_browser(lab, page):
    url, token = lab
    cells = run_all(page, url, token, NOTEBOOKS[0])
    assert_clean(cells, NOTEBOOKS[0])
    assert page.locator(".jp-OutputArea-output").count() > 5  # outputs are on the page, not just in the model
    shoot(page, page.locator(".jp-Cell").nth(3), "00_start_here.png")


def test_generation_notebook_widget_reacts_and_figures_show(lab, page):
    url, token = lab
    cells = run_all(page, url, token, NOTEBOOKS[1])
    assert_clean(cells, NOTEBOOKS[1])

    # the claims table reads whole: no cell cut to "..." by pandas, and wrapped inside the page
    claims = page.locator(".jp-OutputArea-output table", has_text="what we measured").first
    claims.wait_for(state="visible", timeout=30_000)
    text = claims.inner_text()
    assert "..." not in text and "a prompt of 50 tokens or more raises" in text, text[:500]
    assert claims.bounding_box()["width"] <= 1400, "the table runs off the page instead of wrapping"
    shoot(page, claims, "02_claims_table.png")

    figure = page.locator(".jp-OutputArea-output img[src^='data:image/png']").first
    figure.wait_for(state="visible", timeout=30_000)
    assert figure.bounding_box()["width"] > 200  # a real figure, not a broken-image icon
    shoot(page, figure, "02_figure.png")

    box = page.locator(".jp-OutputArea-output .widget-vbox",
                       has=page.locator("button", has_text="Generate")).first
    box.wait_for(state="visible", timeout=30_000)
    assert box.locator(".widget-slider").count() >= 4  # temperature, top-k, top-p, new tokens
    output = box.locator(".widget-html-content").last
    before = output.inner_text()

    box.locator("button", has_text="Generate").click()
    page.wait_for_function("([el, old]) => el.innerText !== old", arg=[output.element_handle(), before],
                           timeout=60_000)
    first = output.inner_text()

    slider = box.locator(".widget-slider", has_text="new tokens")
    readout = slider.locator(".widget-readout")
    old_value = readout.inner_text()
    slider.locator(".noUi-handle").focus()
    for _ in range(30):
        page.keyboard.press("ArrowLeft")
    assert readout.inner_text() != old_value, "the slider did not move"
    box.locator("button", has_text="Generate").click()
    page.wait_for_function("([el, old]) => el.innerText !== old", arg=[output.element_handle(), first],
                           timeout=60_000)
    second = output.inner_text()
    assert len(second) < len(first), (first, second)  # fewer new tokens, shorter text
    shoot(page, box, "02_widget.png")
