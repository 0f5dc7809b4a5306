// The room page: ask for a name, keep one WebSocket to the room, show the conversation.
//
// User text only ever reaches the page through textContent, never as HTML.
// A lost connection is retried with capped exponential backoff and jitter, and
// the state is always on screen ("connecting…", "online", "reconnecting in 3s").
// Every chat line carries its position in the room's history ("pos"); a
// reconnect asks for the lines after the last one shown (?since=POS), so a
// network blip loses nothing and shows nothing twice. If the server cannot
// recover them ("reset"), the page says so and reloads.
"use strict";

(() => {
  const chat = document.getElementById("chat");
  const room = chat.dataset.room;
  const socketPath = chat.dataset.socketPath; // ends with "/"; the name follows

  const joinSection = document.getElementById("join");
  const joinForm = document.getElementById("join-form");
  const nameInput = document.getElementById("name");
  const joinProblem = document.getElementById("join-problem");
  const log = document.getElementById("log");
  const composer = document.getElementById("composer");
  const textInput = document.getElementById("text");
  const sendButton = document.getElementById("send");
  const stateEl = document.getElementById("state");
  const meEl = document.getElementById("me");
  const leaveLink = document.getElementById("leave");
  const membersEl = document.getElementById("members");

  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_CAP_MS = 10000;
  const STABLE_AFTER_MS = 5000; // a connection this old resets the backoff
  const NAME_KEY = "wschannels-chat.name";
  const REJOIN_KEY = "wschannels-chat.rejoin"; // set before a reload that should join again
  const CLOSE_NAME_TAKEN = 4001;
  // This page, to the server: a reconnect of this page is not "someone else with that name".
  const pageId = Math.random().toString(36).slice(2, 12) + Date.now().toString(36);

  let socket = null;
  let name = null; // the name we want to be in the room as; null: not joining
  let inRoom = false; // this socket's first frame was our own "join"
  let everJoined = false;
  let attempt = 0;
  let openedAt = 0;
  let retryTimer = null;
  let countdownTimer = null;
  let lastPos = null; // position of the last chat line shown
  const shown = new Set(); // positions of the lines shown: none twice

  // ---- connection state -------------------------------------------------

  function showState(state, text) {
    stateEl.hidden = state === "idle" && !everJoined;
    stateEl.dataset.state = state;
    stateEl.textContent = text;
    const online = state === "online" && inRoom;
    sendButton.disabled = !online;
    textInput.disabled = !everJoined;
  }

  function socketUrl(forName) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams({ page: pageId });
    if (lastPos !== null) query.set("since", lastPos);
    return `${scheme}//${location.host}${socketPath}${encodeURIComponent(forName)}?${query}`;
  }

  function connect() {
    clearTimers();
    if (name === null) return;
    if (!navigator.onLine) {
      showState("offline", "offline, waiting for the network");
      return;
    }
    showState("connecting", "connecting…");
    inRoom = false;
    const ws = new WebSocket(socketUrl(name));
    socket = ws;
    ws.onopen = () => {
      if (ws !== socket) return;
      openedAt = Date.now();
      showState("online", "online");
    };
    ws.onmessage = (event) => {
      if (ws !== socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      receive(message);
    };
    ws.onclose = (event) => {
      if (ws !== socket) return;
      socket = null;
      inRoom = false;
      if (event.code === CLOSE_NAME_TAKEN) name = null; // asked for another name already
      if (openedAt && Date.now() - openedAt > STABLE_AFTER_MS) attempt = 0;
      openedAt = 0;
      if (name === null) {
        showState("idle", "not connected");
      } else {
        scheduleReconnect();
      }
    };
  }

  function scheduleReconnect() {
    // Capped exponential backoff with "equal jitter": half the delay is fixed,
    // half random, so many pages that lost the same server do not return at once.
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    attempt += 1;
    const due = Date.now() + delay;
    const tick = () => {
      const seconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      showState("reconnecting", `reconnecting in ${seconds}s`);
    };
    tick();
    countdownTimer = setInterval(tick, 250);
    retryTimer = setTimeout(connect, delay);
  }

  function clearTimers() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = countdownTimer = null;
  }

  function disconnect() {
    clearTimers();
    if (socket) {
      const ws = socket;
      socket = null;
      ws.close(1000);
    }
  }

  window.addEventListener("online", () => {
    if (name !== null && socket === null) {
      attempt = 0;
      connect();
    }
  });
  window.addEventListener("offline", () => {
    if (socket === null && name !== null) {
      clearTimers();
      showState("offline", "offline, waiting for the network");
    }
  });
  // Leaving the page closes the socket (the room is told at once); coming back
  // to it through the browser's back/forward cache reconnects.
  let nameBeforeHide = null;
  window.addEventListener("pagehide", () => {
    nameBeforeHide = name;
    name = null;
    disconnect();
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && nameBeforeHide !== null) {
      name = nameBeforeHide;
      attempt = 0;
      connect();
    }
  });
  stateEl.addEventListener("click", () => {
    // Tapping "reconnecting in 7s" retries now.
    if (retryTimer !== null) connect();
  });

  // ---- what the server says ---------------------------------------------

  function receive(message) {
    const typ = String(message.typ ?? "");
    const from = String(message.from ?? "");
    const text = String(message.text ?? "");
    if (!inRoom) {
      // Our own "join" says we are in; an "error" before it says why we are not.
      if (typ === "join" && from === name) {
        enterRoom();
        return;
      }
      if (typ === "error") {
        // Refused (e.g. the name is too long): ask again, on the same open socket.
        askForName(text);
        return;
      }
    }
    if (typ === "message") {
      const pos = typeof message.pos === "string" ? message.pos : null;
      if (pos !== null) {
        if (shown.has(pos)) return;
        shown.add(pos);
        lastPos = pos;
      }
      addMessage(from, text);
    } else if (typ === "join") addNotice(from, "joined");
    else if (typ === "leave") addNotice(from, "left");
    else if (typ === "members") showMembers(message.members);
    else if (typ === "reset") reset(text);
    else if (typ === "error") addError(text);
  }

  function showMembers(names) {
    membersEl.replaceChildren();
    for (const member of Array.isArray(names) ? names : []) {
      const item = element("li", member === name ? "me" : "", String(member));
      membersEl.append(item);
    }
    membersEl.hidden = false;
  }

  function reset(text) {
    // The lines missed while away are gone from the room's history: start over,
    // and join again as the same person once reloaded.
    sessionStorage.setItem(REJOIN_KEY, JSON.stringify({ room, name }));
    name = null;
    addError(text || "Some messages could not be recovered; reloading.");
    showState("reconnecting", "reloading…");
    setTimeout(() => location.reload(), 1500);
  }

  function enterRoom() {
    inRoom = true;
    localStorage.setItem(NAME_KEY, name);
    joinSection.hidden = true;
    log.hidden = false;
    composer.hidden = false;
    meEl.hidden = false;
    meEl.textContent = name;
    leaveLink.hidden = false;
    addNotice(null, everJoined ? "You are back" : `You joined # ${room}`);
    everJoined = true;
    showState("online", "online");
    textInput.focus();
  }

  function askForName(problem) {
    // Keep the socket: the server left it open, and the status shows it.
    name = null;
    joinSection.hidden = false;
    log.hidden = !everJoined;
    composer.hidden = true;
    joinProblem.textContent = problem;
    joinProblem.hidden = !problem;
    nameInput.focus();
  }

  // ---- rendering (text only) --------------------------------------------

  function hue(text) {
    let h = 0;
    for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  function time() {
    return new Date().toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  }

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function append(item) {
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    log.append(item);
    if (nearBottom) log.scrollTop = log.scrollHeight;
  }

  function addMessage(from, text) {
    const mine = from === name;
    const item = element("li", `msg ${mine ? "mine" : "theirs"}`);
    item.dataset.from = from;
    item.style.setProperty("--hue", hue(from));
    const last = log.lastElementChild;
    if (last && last.classList.contains("msg") && last.dataset.from === from) {
      item.classList.add("cont");
    }
    const avatar = element("span", "avatar", [...from][0]?.toUpperCase() ?? "?");
    avatar.setAttribute("aria-hidden", "true");
    const bubble = element("div", "bubble");
    if (!mine) bubble.append(element("div", "from", from));
    const line = element("p", "line");
    line.append(element("span", "text", text), element("time", "at", time()));
    bubble.append(line);
    item.append(avatar, bubble);
    append(item);
  }

  function addNotice(from, what) {
    const item = element("li", "notice");
    if (from !== null) item.append(element("b", "who", from), " ");
    item.append(what);
    append(item);
  }

  function addError(text) {
    const item = element("li", "notice error", text);
    item.setAttribute("role", "alert");
    append(item);
  }

  // ---- forms --------------------------------------------------------------

  joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const wanted = nameInput.value.trim();
    if (!wanted) {
      joinProblem.textContent = "Please choose a display name.";
      joinProblem.hidden = false;
      return;
    }
    joinProblem.hidden = true;
    disconnect();
    name = wanted;
    attempt = 0;
    connect();
  });

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textInput.value;
    if (!text.trim() || socket === null || socket.readyState !== WebSocket.OPEN || !inRoom) {
      return;
    }
    socket.send(JSON.stringify({ typ: "message", text }));
    textInput.value = "";
    textInput.focus();
  });

  nameInput.value = localStorage.getItem(NAME_KEY) ?? "";
  nameInput.focus();
  showState("idle", "not connected");
  let rejoin = null;
  try {
    rejoin = JSON.parse(sessionStorage.getItem(REJOIN_KEY) ?? "null");
  } catch {
    rejoin = null;
  }
  sessionStorage.removeItem(REJOIN_KEY);
  if (rejoin && rejoin.room === room && typeof rejoin.name === "string") {
    name = rejoin.name;
    connect();
  }
})();
