"""The settings dialog: what it shows, what IT has fixed, what a save writes (only the changed
keys, into the per-user file, in a form the app will load), secrets that never come back, the
connection test and the live microphone test. Background work runs on the adapter's real
worker threads."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from callrec_desktop.audio.sources import SyntheticSource
from callrec_desktop.config import load_config
from callrec_desktop.credentials import CredentialStore, profile_for
from callrec_desktop.ui.adapter import DeskAdapter
from callrec_desktop.ui.settings_dialog import SECRET_STORED, SettingsDialog, SettingsServices
from callrec_desktop.ui.user_settings import load_snapshot, locked_keys, to_toml, write_user_changes
from tests.gui.conftest import RATE, make_config, write_config
from tests.support.memkeyring import MemoryKeyring

DEVICES = [{"name": "Jabra Evolve2 40", "index": 0, "max_input_channels": 1},
           {"name": "Softphone mix", "index": 3, "max_input_channels": 2}]


class Env:
    """A config with an optional IT file, an in-memory keyring, an adapter, and a dialog."""

    def __init__(self, tmp_path: Path, qtbot, *, it_file: str | None = None, token=lambda: "tok-123",
                 test_audio: np.ndarray | None = None, user_file_text: str | None = None,
                 settings_in_user_file: bool = False) -> None:
        self.tmp_path = tmp_path
        self.qtbot = qtbot
        self.user_file = tmp_path / "user" / "config.toml"
        self.user_file.parent.mkdir(exist_ok=True)
        if user_file_text is not None:
            self.user_file.write_text(user_file_text)
        self.system_file = None
        if it_file is not None:
            self.system_file = tmp_path / "it" / "config.toml"
            self.system_file.parent.mkdir()
            self.system_file.write_text(it_file)
        (tmp_path / "store").mkdir(exist_ok=True)
        cfg = write_config(tmp_path, store=tmp_path / "store")
        if settings_in_user_file:  # the test settings as the handler's own file: nothing locked
            self.user_file.write_text(cfg.read_text())
            self.config = load_config(system_file=self.system_file, user_file=self.user_file, env={})
        else:  # the test settings as CALLREC_CONFIG, read last: the keys it sets are locked
            self.config = load_config(system_file=self.system_file,
                                      user_file=self.user_file if user_file_text is not None else None,
                                      env={"CALLREC_CONFIG": str(cfg)})
        self.keyring = MemoryKeyring()
        self.credentials = CredentialStore(keyring_backend=self.keyring)
        audio = test_audio if test_audio is not None else 0.2 * np.sin(2 * np.pi * 440 * np.arange(RATE * 6) / RATE)
        self.services = SettingsServices(
            credentials=self.credentials, token_provider=token, list_devices=lambda: DEVICES,
            test_source_factory=lambda name, rate, block: SyntheticSource(audio.astype(np.float32), sample_rate=rate,
                                                                          block_frames=block, realtime=True))
        self.adapter = DeskAdapter()
        self.dialogs = []

    def dialog(self) -> SettingsDialog:
        snapshot = load_snapshot(self.config, credentials=self.credentials, token_provider=self.services.token_provider,
                                 list_devices=self.services.list_devices, user_file=self.user_file)
        d = SettingsDialog(snapshot, self.config, self.adapter, self.services)
        self.qtbot.addWidget(d)
        self.dialogs.append(d)
        d.show()
        return d

    def save(self, d: SettingsDialog):
        with self.qtbot.waitSignal(d.saved, timeout=5000) as blocker:
            d.save_button.click()
        return blocker.args[0]

    def close(self) -> None:
        for d in self.dialogs:
            d.reject()
        assert self.adapter.shutdown(10)
        from PySide6.QtCore import QTimer

        for d in self.dialogs:
            assert not [t for t in d.findChildren(QTimer) if t.isActive()], "a QTimer of the dialog is still running"


@pytest.fixture
def env(tmp_path, qtbot):
    made = []

    def make(**kwargs) -> Env:
        e = Env(tmp_path, qtbot, **kwargs)
        made.append(e)
        return e

    yield make
    for e in made:
        e.close()


def test_the_dialog_shows_the_current_settings_devices_and_the_token(env):
    e = env()
    d = e.dialog()
    assert d.agent_id.text() == "agent007"
    assert [d.agent_device.itemText(i) for i in range(d.agent_device.count())] == [
        "System default input", "Jabra Evolve2 40", "Softphone mix"]
    assert d.agent_device.currentData() == "default" and d.caller_device.currentData() == ""
    assert d.folder_radio.isChecked() and d.folder_path.text() == str(e.tmp_path / "store")
    assert d.patterns.toPlainText().splitlines() == ["card payment", "take a payment", "pay360", "capita pay"]
    assert d.token_field.text() == "tok-123" and d.token_field.isReadOnly()
    d.copy_token_button.click()
    assert QApplication.clipboard().text() == "tok-123"
    assert d.changes() == {}


def test_without_a_control_api_the_token_field_says_so(env):
    d = env(token=None).dialog()
    assert d.token_field.text() == "" and d.token_field.placeholderText() == "control API disabled"
    assert not d.copy_token_button.isEnabled()


def test_keys_set_by_it_are_read_only_with_a_tooltip(env):
    e = env(it_file='[audio]\nagent_device = "Jabra"\n[triggers]\npayment_window_titles = ["Pay360"]\n',
            settings_in_user_file=True)
    d = e.dialog()
    for widget in (d.agent_device, d.test_button, d.patterns):
        assert not widget.isEnabled()
        assert "set by it" in widget.toolTip().lower() and str(e.system_file) in widget.toolTip()
    assert d.agent_device.currentData() == "Jabra"  # IT's value, shown
    assert d.agent_id.isEnabled() and d.caller_device.isEnabled()
    assert set(locked_keys(e.config)) >= {"audio.agent_device", "triggers.payment_window_titles"}


def test_the_config_file_named_on_the_command_line_also_locks_its_keys(tmp_path, qtbot):
    config = make_config(tmp_path, store=tmp_path)
    locked = locked_keys(config)
    assert "identity.agent_id" in locked and "store.url" in locked and "read after your own settings" in locked["store.url"]


def test_saving_writes_only_the_changed_keys_to_the_user_file_and_keeps_its_other_keys(env):
    e = env(user_file_text='[recorder]\ncodec = "opus"\n')
    # the test config file (CALLREC_CONFIG) locks the keys it sets; this user changes the others
    d = e.dialog()
    assert d.is_locked("identity.agent_id") and d.is_locked("store.url")
    d.agent_device.setCurrentIndex(d.agent_device.findData("Jabra Evolve2 40"))
    d.caller_device.setCurrentIndex(d.caller_device.findData("Softphone mix"))
    d.patterns.setPlainText("card payment\nPay360 — secure\n\n")
    saved = e.save(d)
    doc = tomllib.loads(e.user_file.read_text())
    assert doc == {"recorder": {"codec": "opus"},
                   "audio": {"agent_device": "Jabra Evolve2 40", "caller_device": "Softphone mix"},
                   "triggers": {"payment_window_titles": ["card payment", "Pay360 — secure"]}}
    assert set(saved.written) == {"audio.agent_device", "audio.caller_device", "triggers.payment_window_titles"}
    assert "Restart callrec-desktop" in d.status_label.text() and "Agent microphone" in d.status_label.text()
    assert not d.isVisible()
    # the app starts with it
    again = load_config(system_file=None, user_file=e.user_file, env={})
    assert again.audio.agent_device == "Jabra Evolve2 40"
    assert again.triggers.payment_window_titles == ("card payment", "Pay360 — secure")


def test_an_invalid_regular_expression_is_refused_and_nothing_is_written(env):
    e = env()
    d = e.dialog()
    d.patterns.setPlainText("card payment\npay(360\n")
    d.save_button.click()
    assert d.isVisible() and d.error_label.isVisible()
    assert "line 2" in d.error_label.text() and "'pay(360' is not a valid regular expression" in d.error_label.text()
    assert not e.user_file.exists()


def test_s3_credentials_go_to_the_keyring_and_are_never_shown_back(qtbot, env):
    e = env(settings_in_user_file=True)
    d = e.dialog()
    assert not d.snapshot.locked
    d.s3_radio.setChecked(True)
    d.endpoint.setText("http://127.0.0.1:8333")
    d.bucket.setText("calls")
    d.prefix.setText("centre")
    assert d.secret.placeholderText() == "not set"
    d.access_key.setText("AKIA-test")
    d.secret.setText("s3cr3t-value")
    d.save_button.click()
    qtbot.waitUntil(lambda: not d.isVisible(), timeout=5000)
    profile = profile_for("http://127.0.0.1:8333", "calls")
    assert tuple(e.credentials.get(profile)) == ("AKIA-test", "s3cr3t-value")
    assert d.secret.text() == "" and d.access_key.text() == ""
    # next time the dialog opens for that store: empty fields, "stored in the keyring"
    write_user_changes(e.user_file, {"store.url": "s3://calls/centre", "store.endpoint_url": "http://127.0.0.1:8333"})
    e.config = load_config(system_file=None, user_file=e.user_file, env={})
    d2 = e.dialog()
    assert d2.s3_radio.isChecked() and d2.bucket.text() == "calls" and d2.prefix.text() == "centre"
    assert d2.secret.text() == "" and d2.secret.placeholderText() == SECRET_STORED
    assert d2.access_key.text() == "" and d2.access_key.placeholderText() == SECRET_STORED
    assert "s3cr3t" not in repr(d2.snapshot)


def test_half_a_credential_is_refused(env):
    e = env(user_file_text='[store]\nurl = "s3://calls"\n')
    e.config = load_config(system_file=None, user_file=e.user_file, env={})
    d = e.dialog()
    d.access_key.setText("AKIA-only")
    d.save_button.click()
    assert "both the access key id and the secret key" in d.error_label.text()


def test_test_connection_writes_a_health_object_on_a_worker_and_reports(env):
    e = env(settings_in_user_file=True)
    d = e.dialog()
    d.test_connection_button.click()
    assert not d.test_connection_button.isEnabled()
    e.qtbot.waitUntil(lambda: d.connection_result.text().startswith("Connected"), timeout=5000)
    assert list((e.tmp_path / "store" / "health").glob("*.json"))
    # a folder that does not exist (an unmounted share) fails, and says why
    d.folder_path.setText(str(e.tmp_path / "not-mounted"))
    d.test_connection_button.click()
    e.qtbot.waitUntil(lambda: d.connection_result.text().startswith("Connection failed"), timeout=5000)
    assert "not found" in d.connection_result.text()


def test_the_microphone_test_runs_on_a_worker_and_moves_the_meter(env):
    e = env()
    d = e.dialog()
    d.test_button.click()
    assert d.device_test_running and not d.test_button.isEnabled()
    e.qtbot.waitUntil(lambda: d.test_meter.db is not None and d.test_meter.db > -20, timeout=3000)
    d.reject()  # closing stops the test early
    e.qtbot.waitUntil(lambda: not d.device_test_running, timeout=3000)
    assert d.test_result.text().startswith("Working")


def test_a_silent_microphone_is_reported(env):
    e = env(test_audio=np.zeros(RATE // 2))
    d = e.dialog()
    d.test_button.click()
    e.qtbot.waitUntil(lambda: not d.device_test_running, timeout=5000)
    assert d.test_result.text().startswith("No sound was heard")


@pytest.mark.device
def test_the_microphone_test_records_from_the_real_device_on_a_worker(env, pulse_server):
    """The default test source: a real DeviceSource on the virtual audio server, with a tone
    played into it while the test listens."""
    e = env()
    e.services.test_source_factory = None
    d = e.dialog()
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE * 6) / RATE)
    player = pulse_server.play(np.stack([tone, tone], axis=1), wait=False)
    try:
        d.test_button.click()
        e.qtbot.waitUntil(lambda: d.test_meter.db is not None and d.test_meter.db > -30, timeout=6000)
        e.qtbot.waitUntil(lambda: not d.device_test_running, timeout=8000)
    finally:
        player.kill()
        player.wait(5)
    assert d.test_result.text().startswith("Working"), d.test_result.text()


def test_settings_open_from_the_window_and_a_save_says_what_needs_a_restart(make_rig, tmp_path):
    keyring = MemoryKeyring()
    services = SettingsServices(credentials=CredentialStore(keyring_backend=keyring), token_provider=lambda: "t",
                                list_devices=lambda: DEVICES)
    rig = make_rig(services=services).start()
    rig.window.settings_action.trigger()
    rig.qtbot.waitUntil(lambda: rig.window.settings_dialog is not None and rig.window.settings_dialog.isVisible(),
                        timeout=5000)
    d = rig.window.settings_dialog
    d.agent_device.setCurrentIndex(d.agent_device.findData("Softphone mix"))
    d.save_button.click()
    rig.qtbot.waitUntil(rig.window.notice_bar.isVisible, timeout=5000)
    assert "Restart callrec-desktop to use the new Agent microphone" in rig.window.notice_bar.text.text()
    user_file = tmp_path / "xdg-config" / "callrec-desktop" / "config.toml"
    assert tomllib.loads(user_file.read_text()) == {"audio": {"agent_device": "Softphone mix"}}


def test_toml_writer_round_trips_awkward_strings(tmp_path):
    doc = {"identity": {"agent_id": 'O\'Brien "quote" \\ back\ttab é'}, "triggers": {"payment_window_titles": ["a\\d+"]}}
    assert tomllib.loads(to_toml(doc)) == doc


def test_the_payment_tab_says_when_the_window_title_trigger_cannot_work_here(env):
    """focus_support() is the real platform check from triggers.focus, run with no DISPLAY."""
    from dataclasses import replace

    from callrec_desktop.triggers.focus import focus_support

    message = focus_support(env={})
    assert message  # no DISPLAY: not supported
    e = env()
    d = e.dialog()
    assert not hasattr(d, "focus_unsupported")  # supported (or not checked): no warning
    snapshot = replace(load_snapshot(e.config, focus_support=lambda: focus_support(env={}), user_file=e.user_file))
    d2 = SettingsDialog(snapshot, e.config, e.adapter, e.services)
    e.qtbot.addWidget(d2)
    e.dialogs.append(d2)
    assert message in d2.focus_unsupported.text()
    assert "Card-tone detection and the control API still pause recording" in d2.focus_unsupported.text()


IT_EVERYTHING = '''[audio]
agent_device = "Jabra Evolve2 40"
caller_device = "Softphone mix"
output_device = "Speakers"
[store]
url = "s3://council-calls/centre"
endpoint_url = "https://s3.council.local"
[triggers]
payment_window_titles = ["card payment"]
dtmf_enabled = true
[identity]
agent_id = "it-agent"
'''
HANDLER_OWN = '''[audio]
agent_device = "Mine"
output_device = "My speakers"
[triggers]
payment_window_titles = ["nothing matches this"]
dtmf_enabled = false
[identity]
agent_id = "me"
'''


def test_every_key_it_sets_shows_its_value_read_only_over_the_users_file_and_the_config_file(env):
    """IT's file sets every key the dialog shows; the handler's file and the --config file
    (CALLREC_CONFIG, which sets the store and the handler id) set them otherwise. The dialog
    shows IT's values, each widget disabled with a tooltip naming IT's file, and a save can
    write none of them."""
    from callrec_desktop.ui.settings_services import PlaybackChoice
    from callrec_desktop.ui.user_settings import FIELDS, SHOWN_READ_ONLY

    e = env(it_file=IT_EVERYTHING, user_file_text=HANDLER_OWN)
    assert e.config.extra_file is not None  # the test settings: CALLREC_CONFIG, read after the user's file
    d = e.dialog()
    it_tip = f"Set by IT in {e.system_file}; ask IT to change it"
    assert d.snapshot.locked == {key: it_tip for key in (*FIELDS, *SHOWN_READ_ONLY)}
    assert d.locked_note.isVisible()
    assert d.agent_device.currentData() == "Jabra Evolve2 40" and d.caller_device.currentData() == "Softphone mix"
    assert d.s3_radio.isChecked() and (d.bucket.text(), d.prefix.text()) == ("council-calls", "centre")
    assert d.endpoint.text() == "https://s3.council.local"
    assert d.patterns.toPlainText() == "card payment"
    assert d.agent_id.text() == "it-agent"
    assert d.dtmf_enabled.isChecked()  # the handler's dtmf_enabled = false is not in force
    shown = (d.agent_device, d.test_button, d.caller_device, d.folder_radio, d.s3_radio, d.folder_path,
             d.browse_button, d.bucket, d.prefix, d.endpoint, d.patterns, d.agent_id, d.dtmf_enabled)
    for widget in shown:
        assert not widget.isEnabled(), widget.accessibleName() or widget
        assert widget.toolTip() == it_tip, widget.accessibleName() or widget
    d.folder_radio.setChecked(True)  # switching the store kind (by code: the radios are disabled) ...
    assert not d.folder_path.isEnabled() and not d.browse_button.isEnabled()  # ... re-enables nothing locked
    d.s3_radio.setChecked(True)
    assert not d.endpoint.isEnabled() and not d.bucket.isEnabled()
    d.agent_id.setText("changed by code")
    d.patterns.setPlainText("")
    assert d.changes() == {}  # a locked key is never written
    d.save_button.click()
    e.qtbot.waitUntil(lambda: not d.isVisible(), timeout=5000)
    assert tomllib.loads(e.user_file.read_text()) == tomllib.loads(HANDLER_OWN)  # untouched
    # the Library's playback device, locked the same way
    devices = PlaybackChoice(e.config, list_devices=lambda: [{"name": "Speakers"}]).load()
    assert (devices.current, devices.locked) == ("Speakers", it_tip)


def test_a_key_the_config_file_sets_is_locked_as_read_after_yours_unless_it_sets_it_too(env):
    e = env(it_file='[identity]\nagent_id = "it-agent"\n')
    d = e.dialog()
    assert d.agent_id.text() == "it-agent" and not d.agent_id.isEnabled()
    assert d.agent_id.toolTip() == f"Set by IT in {e.system_file}; ask IT to change it"
    assert not d.folder_path.isEnabled()  # the test settings (CALLREC_CONFIG) set store.url
    assert d.folder_path.toolTip() == f"Set in {e.config.extra_file}, which is read after your own settings"
    assert d.agent_device.isEnabled() and d.agent_device.toolTip() == ""  # set by nobody but the defaults
    assert not d.dtmf_enabled.isEnabled()  # never edited here, whoever set it
    assert "dtmf_enabled" in d.dtmf_enabled.toolTip() and d.dtmf_enabled.isChecked()


def test_the_dialog_shows_the_key_tone_trigger_off_when_no_it_file_keeps_it_on(env):
    """Without IT's file a handler's own file can switch it off: the dialog then says so plainly
    (read-only), rather than hiding it."""
    e = env(user_file_text="[triggers]\ndtmf_enabled = false\n")
    d = e.dialog()
    assert not d.dtmf_enabled.isChecked() and not d.dtmf_enabled.isEnabled()
    assert "triggers.dtmf_enabled" not in d.snapshot.locked
