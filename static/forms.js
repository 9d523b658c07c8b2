// A form sent twice (a double click, Enter pressed twice) would carry a CSRF token or an
// authorization request the first submission has already used up, and the browser would
// show the second answer: an error, though the first went through. The first submission
// stands; later ones are dropped. The button is not disabled, so its name and value
// (`decision=allow`) still go with the form.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.method.toLowerCase() !== "post") {
    return;
  }
  if (form.dataset.sent) {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "1";
});
// Back to this page from the browser's history cache: its forms may be sent again.
window.addEventListener("pageshow", function (event) {
  if (event.persisted) {
    Array.prototype.forEach.call(document.forms, function (form) {
      delete form.dataset.sent;
    });
  }
});
