#!/bin/sh
# The page: asks the api (by its service name) and shows its answer.
answer=$(wget -q -O - http://api:8080/cgi-bin/visit 2>&1) || answer="the api did not answer: $answer"
printf 'Content-Type: text/html\r\n\r\n'
cat <<PAGE
<!doctype html>
<title>$TITLE</title>
<h1>$TITLE</h1>
<p>$answer</p>
PAGE
