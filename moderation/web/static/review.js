// Review page: reveal a blurred image on click (or r); v / n / o label the first category
// without a label and submit once every category has one. Typing in the note or a select
// is never taken for a shortcut.
(function () {
  "use strict";
  var form = document.getElementById("review-form");
  var image = document.getElementById("review-image");
  if (!form) return;

  function reveal() {
    if (image) image.classList.remove("blurred");
  }
  if (image) image.addEventListener("click", reveal);

  function open() {
    var sets = form.querySelectorAll("fieldset.decision");
    for (var i = 0; i < sets.length; i++) {
      if (!sets[i].querySelector("input[type=radio]:checked")) return sets[i];
    }
    return null;
  }

  function mark() {
    var sets = form.querySelectorAll("fieldset.decision");
    var current = open();
    for (var i = 0; i < sets.length; i++) sets[i].classList.toggle("current", sets[i] === current);
  }

  form.addEventListener("change", mark);

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var tag = target && target.tagName;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (tag === "TEXTAREA" || tag === "SELECT" || tag === "INPUT" && target.type === "text") return;
    var key = (event.key || "").toLowerCase();
    if (key === "r") {
      reveal();
      event.preventDefault();
      return;
    }
    var current = open();
    if (!current) return;
    var choice = current.querySelector('input[data-key="' + key + '"]');
    if (!choice) return;
    event.preventDefault();
    choice.checked = true;
    mark();
    if (!open()) form.submit();
  });

  mark();
  document.documentElement.setAttribute("data-review-ready", "1");
})();
