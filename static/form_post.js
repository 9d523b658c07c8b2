// OAuth 2.0 Form Post Response Mode: submit the hidden form to the client as soon as
// the page is parsed. Loaded with `defer`, so the form already exists. People without
// JavaScript use the visible Continue button instead.
"use strict";
(function () {
  var form = document.getElementById("form_post");
  if (form) {
    form.submit();
  }
})();
