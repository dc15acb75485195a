"""The core's own studies: experiments on the recurrent cells themselves, not on any user's data
(``sketchrnn rnn ...``)."""
