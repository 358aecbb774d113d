// The terminal page: xterm.js + fit addon bound to the environment's terminal WebSocket.
// The browser sends only keystrokes ({"type": "input"}) and sizes ({"type": "resize"}); the
// server chooses the container and the command.
(function () {
  "use strict";
  const root = document.getElementById("terminal");
  const status = document.getElementById("terminal-status");
  if (!root || !window.Terminal || !window.FitAddon) {
    return;
  }

  // xterm.js adds <style> elements; the page's Content-Security-Policy admits them by this nonce.
  const nonce = root.dataset.styleNonce;
  const createElement = document.createElement.bind(document);
  document.createElement = function (tag, options) {
    const element = createElement(tag, options);
    if (String(tag).toLowerCase() === "style") {
      element.nonce = nonce;
    }
    return element;
  };

  const term = new window.Terminal({
    cursorBlink: true,
    scrollback: 5000,
    fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace',
    fontSize: 14,
  });
  const fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(root);
  fit.fit();

  let socket = null;

  function say(text) {
    status.textContent = text;
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(message));
    }
  }

  function connect() {
    if (socket) {
      socket.onclose = null;
      socket.close();
    }
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + root.dataset.socketPath);
    say("Connecting…");
    socket.onopen = function () {
      send({ type: "resize", cols: term.cols, rows: term.rows });
      term.focus();
    };
    socket.onmessage = function (event) {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (message.type === "output") {
        term.write(message.data);
      } else if (message.type === "info") {
        say(message.message);
      } else if (message.type === "closed") {
        say(message.message + " Reconnect to start a new session.");
        term.write("\r\n\x1b[2m[" + message.message + "]\x1b[0m\r\n");
      }
    };
    socket.onclose = function (event) {
      if (event.code === 1006 || event.code === 1000 || event.code === 403) {
        if (!status.textContent.includes("Reconnect")) {
          say("Disconnected. Reconnect to start a new session.");
        }
      }
    };
  }

  function copySelection() {
    const text = term.getSelection();
    if (text && navigator.clipboard) {
      navigator.clipboard.writeText(text);
    }
    term.focus();
  }

  function paste() {
    if (navigator.clipboard && navigator.clipboard.readText) {
      navigator.clipboard.readText().then(function (text) {
        term.paste(text);
      });
    }
    term.focus();
  }

  term.onData(function (data) {
    send({ type: "input", data: data });
  });
  term.onResize(function (size) {
    send({ type: "resize", cols: size.cols, rows: size.rows });
  });
  // Ctrl+Shift+C / Ctrl+Shift+V copy and paste; plain Ctrl+C stays the interrupt.
  term.attachCustomKeyEventHandler(function (event) {
    if (event.type === "keydown" && event.ctrlKey && event.shiftKey) {
      if (event.code === "KeyC") {
        copySelection();
        event.preventDefault();
        return false;
      }
      if (event.code === "KeyV") {
        paste();
        event.preventDefault();
        return false;
      }
    }
    return true;
  });
  window.addEventListener("resize", function () {
    fit.fit();
  });
  document.getElementById("terminal-copy").addEventListener("click", copySelection);
  document.getElementById("terminal-paste").addEventListener("click", paste);
  document.getElementById("terminal-reconnect").addEventListener("click", function () {
    term.reset();
    connect();
  });

  if (root.dataset.running === "true") {
    connect();
  }
})();
