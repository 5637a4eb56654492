// logweir dashboard: fetch the panels again twice a second and swap them in.
// The server draws every chart; this script only moves HTML.
(function () {
  "use strict";
  var panels = document.getElementById("panels");
  var status = document.getElementById("status");
  var source = panels.getAttribute("data-source");
  var busy = false;

  function say(text) { status.textContent = text; }

  function refresh() {
    if (busy) { return; }
    busy = true;
    fetch(source, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        panels.innerHTML = html;
        say("live · updated " + new Date().toLocaleTimeString());
      })
      .catch(function (error) { say("not updating: " + error.message); })
      .then(function () { busy = false; });
  }

  say("live");
  setInterval(refresh, 500);
})();
