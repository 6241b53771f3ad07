// Keys for the review pages: each key submits the same form a mouse click would.
(function () {
  "use strict";
  function submit() {
    for (var i = 0; i < arguments.length; i++) {
      var form = document.getElementById(arguments[i]);
      if (form) { form.requestSubmit(); return true; }
    }
    return false;
  }
  function follow(id) {
    var link = document.getElementById(id);
    if (link) { window.location.href = link.href; return true; }
    return false;
  }
  var keys = {
    m: function () { return submit("merge", "keep"); },
    n: function () { return submit("not_same", "stray-split"); },
    u: function () { return submit("undo"); },
    s: function () { return follow("skip"); },
    d: function () { return submit("class-doe", "merge-doe"); },
    f: function () { return submit("class-fawn", "merge-fawn"); },
    b: function () { return submit("class-buck", "merge-buck"); },
    x: function () { return submit("class-not-deer"); },
    1: function () { return submit("not-deer-left"); },
    2: function () { return submit("not-deer-right"); },
    arrowright: function () { return follow("next"); },
    arrowleft: function () { return follow("prev"); }
  };
  var busy = false;
  document.addEventListener("keydown", function (event) {
    if (busy || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea") { return; }
    var action = keys[event.key.toLowerCase()];
    if (action && action()) { busy = true; event.preventDefault(); }
  });
  // Deer page: choosing a class in a sighting's menu submits the correction form.
  document.querySelectorAll("select.correct").forEach(function (select) {
    select.addEventListener("change", function () {
      var form = document.getElementById("correct");
      form.elements.detection.value = select.dataset.detection;
      form.elements.class_name.value = select.value;
      if (select.value) { form.requestSubmit(); }
    });
  });
})();
