"""The Lightning side: the experiment module, task metric sets, callbacks, models and builders."""
