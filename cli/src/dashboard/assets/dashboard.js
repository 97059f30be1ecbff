// flowcore dashboard: follows a run that is still going. Reads /api/runs/<id>/state every
// second and reloads the page when the run moved on. Never writes server text into the
// page: the reload brings it, rendered and escaped by the server.
(function () {
  "use strict";
  var body = document.body;
  if (!body || body.dataset.final !== "false") return;
  var head = document.querySelector(".run-head");
  if (!head) return;
  var id = head.dataset.runId;
  var state = document.getElementById("run-state");
  var shownState = state ? state.dataset.state : "";
  var shownTasks = Number(head.dataset.taskRuns || 0);
  function poll() {
    fetch("/api/runs/" + encodeURIComponent(id) + "/state", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (s && (s.state !== shownState || s.task_runs !== shownTasks)) {
          window.location.reload();
        } else {
          setTimeout(poll, 1000);
        }
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 1000);
})();
